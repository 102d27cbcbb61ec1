-- A group of writes from many requests runs as one statement (kernel::db,
-- "group commit"): its last part calls this with whether every request's
-- condition held (a guard found its row, a conditional update changed
-- its). When one did not, the error undoes the whole statement, and each
-- request is run again on its own. SQLSTATE VGGRD names it to the caller.
CREATE FUNCTION voelgoed_guard(ok boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'a condition of the group did not hold' USING ERRCODE = 'VGGRD';
    END IF;
    RETURN true;
END
$$;
