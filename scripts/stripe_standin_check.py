#!/usr/bin/env python3
"""Drives the Stripe stand-in (`voelgoed stripe-standin`) with Stripe's own
Python library (`stripe==16.1.0`, installed by scripts/test.sh), so what the
stand-in answers is what a real Stripe client accepts: objects, errors,
idempotent replays and signed webhook events.

It listens for the stand-in's webhook events on 127.0.0.1:<webhook-port>, so
start the stand-in with `--webhook-url http://127.0.0.1:<webhook-port>/`:

    voelgoed stripe-standin --addr 127.0.0.1:12111 --secret-key sk_test_x \
        --webhook-secret whsec_x --webhook-url http://127.0.0.1:12112/ &
    python3 scripts/stripe_standin_check.py --base http://127.0.0.1:12111 \
        --secret-key sk_test_x --webhook-secret whsec_x --webhook-port 12112

Each argument may come from the environment instead: STRIPE_STANDIN_BASE,
STRIPE_STANDIN_SECRET_KEY, STRIPE_STANDIN_WEBHOOK_SECRET,
STRIPE_STANDIN_WEBHOOK_PORT. Prints every check; exits 1 on the first that
fails.
"""

import argparse
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import stripe

PINNED = "16.1.0"
checks = 0


def check(what, ok, detail=""):
    global checks
    if not ok:
        print(f"FAIL: {what} {detail}".rstrip(), file=sys.stderr)
        sys.exit(1)
    checks += 1
    print(f"ok: {what}")


def raises(what, error_class, call, **expect):
    """`call` must raise `error_class` whose attributes equal `expect`."""
    try:
        call()
    except error_class as e:
        for name, want in expect.items():
            got = getattr(e, name, None)
            check(f"{what}: {name} is {want!r}", got == want, f"(got {got!r}: {e})")
        check(f"{what}: raises {error_class.__name__}", True)
        return e
    except stripe.StripeError as e:
        check(f"{what}: raises {error_class.__name__}", False, f"(got {type(e).__name__}: {e})")
    check(f"{what}: raises {error_class.__name__}", False, "(nothing raised)")


class Receiver:
    """A webhook endpoint on loopback that keeps each request's raw body and
    Stripe-Signature header."""

    def __init__(self, port):
        received = self.received = []
        lock = self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    received.append((body, self.headers.get("Stripe-Signature")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, event_type, object_id, timeout=15):
        """The first delivery of `event_type` about `object_id` as (raw body, signature header)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for body, signature in self.received:
                    e = json.loads(body)
                    if e.get("type") == event_type and e["data"]["object"].get("id") == object_id:
                        return body, signature
            time.sleep(0.05)
        check(f"webhook {event_type} for {object_id} arrives", False, f"(within {timeout} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default=os.environ.get("STRIPE_STANDIN_BASE"))
    ap.add_argument("--secret-key", default=os.environ.get("STRIPE_STANDIN_SECRET_KEY"))
    ap.add_argument("--webhook-secret", default=os.environ.get("STRIPE_STANDIN_WEBHOOK_SECRET"))
    ap.add_argument("--webhook-port", type=int, default=os.environ.get("STRIPE_STANDIN_WEBHOOK_PORT"))
    a = ap.parse_args()
    if not (a.base and a.secret_key and a.webhook_secret and a.webhook_port):
        ap.error("--base, --secret-key, --webhook-secret and --webhook-port are required")

    check(f"stripe library is the pinned {PINNED}", stripe.VERSION == PINNED, f"(found {stripe.VERSION})")
    receiver = Receiver(a.webhook_port)
    client = stripe.StripeClient(a.secret_key, base_addresses={"api": a.base}, max_network_retries=0)
    order = f"ord_{uuid.uuid4().hex[:12]}"
    key = f"create-{order}"
    params = {
        "amount": 2500,
        "currency": "zar",
        "metadata": {"order_id": order, "org": "demo"},
        "description": "2 tickets",
        "automatic_payment_methods": {"enabled": True},
    }

    # Create, and again with the same idempotency key.
    pi = client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
    check("create returns a PaymentIntent", isinstance(pi, stripe.PaymentIntent) and pi.object == "payment_intent")
    check("its id is pi_…", pi.id.startswith("pi_"), pi.id)
    check("amount, currency, status as created",
          (pi.amount, pi.currency, pi.status, pi.amount_received) == (2500, "zar", "requires_payment_method", 0))
    check("metadata carried", pi.metadata["order_id"] == order and pi.metadata.to_dict() == {"order_id": order, "org": "demo"})
    check("client_secret belongs to the intent", pi.client_secret.startswith(pi.id + "_secret_"))
    check("livemode false, no charge yet", pi.livemode is False and pi.latest_charge is None and pi.last_payment_error is None)
    check("automatic_payment_methods enabled", pi.automatic_payment_methods.enabled is True)
    check("response carries Request-Id", (pi.last_response.request_id or "").startswith("req_"))
    again = client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
    check("same key, same parameters: same intent", again.id == pi.id, f"({again.id} vs {pi.id})")
    check("the replay says so", again.last_response.headers.get("Idempotent-Replayed") == "true")
    raises("same key, other parameters", stripe.IdempotencyError,
           lambda: client.v1.payment_intents.create(params={**params, "amount": 2600}, options={"idempotency_key": key}))

    # Read it back.
    got = client.v1.payment_intents.retrieve(pi.id)
    check("retrieve returns the same intent", got.id == pi.id and got.client_secret == pi.client_secret and got.amount == 2500)
    listed = client.v1.payment_intents.list(params={"limit": 3, "created": {"gte": pi.created}})
    check("list is a list of intents", listed.object == "list" and all(isinstance(x, stripe.PaymentIntent) for x in listed.data))
    check("list holds the intent", pi.id in [x.id for x in listed.auto_paging_iter()])

    # Refusals in Stripe's error shape.
    raises("missing amount", stripe.InvalidRequestError,
           lambda: client.v1.payment_intents.create(params={"currency": "zar"}), param="amount", http_status=400)
    raises("amount below 1", stripe.InvalidRequestError,
           lambda: client.v1.payment_intents.create(params={"amount": 0, "currency": "zar"}), param="amount")
    raises("unknown currency", stripe.InvalidRequestError,
           lambda: client.v1.payment_intents.create(params={"amount": 100, "currency": "xyz"}), param="currency")
    raises("unknown intent", stripe.InvalidRequestError,
           lambda: client.v1.payment_intents.retrieve("pi_doesnotexist"), code="resource_missing", http_status=404)
    bad = stripe.StripeClient("sk_test_wrong", base_addresses={"api": a.base}, max_network_retries=0)
    raises("a wrong API key", stripe.AuthenticationError, lambda: bad.v1.payment_intents.retrieve(pi.id), http_status=401)

    # The customer pays.
    paid = client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    check("confirm with pm_card_visa succeeds", paid.status == "succeeded" and paid.amount_received == 2500)
    check("a charge is recorded", (paid.latest_charge or "").startswith("ch_"))
    raises("confirm twice", stripe.InvalidRequestError,
           lambda: client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"}),
           code="payment_intent_unexpected_state")

    # Refunds.
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000, "metadata": {"order_id": order}})
    check("a partial refund", isinstance(refund, stripe.Refund) and refund.id.startswith("re_")
          and (refund.amount, refund.currency, refund.status, refund.payment_intent) == (1000, "zar", "succeeded", pi.id))
    check("the refund names the charge", refund.charge == paid.latest_charge)
    check("refund retrieve", client.v1.refunds.retrieve(refund.id).amount == 1000)
    check("refund list by intent", [r.id for r in client.v1.refunds.list(params={"payment_intent": pi.id}).data] == [refund.id])
    raises("refunding more than is left", stripe.InvalidRequestError,
           lambda: client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 2000}), param="amount", http_status=400)
    rest = client.v1.refunds.create(params={"payment_intent": pi.id})
    check("a refund without amount takes what is left", rest.amount == 1500)
    raises("refunding a refunded charge", stripe.InvalidRequestError,
           lambda: client.v1.refunds.create(params={"payment_intent": pi.id}), code="charge_already_refunded")

    # A declined card.
    other = client.v1.payment_intents.create(params={"amount": 900, "currency": "zar", "metadata": {"order_id": order + "-2"}})
    raises("refunding an unpaid intent", stripe.InvalidRequestError,
           lambda: client.v1.refunds.create(params={"payment_intent": other.id}), http_status=400)
    raises("a declined card", stripe.CardError,
           lambda: client.v1.payment_intents.confirm(other.id, params={"payment_method": "pm_card_chargeDeclined"}),
           code="card_declined", http_status=402)
    declined = client.v1.payment_intents.retrieve(other.id)
    check("the intent awaits another payment method",
          declined.status == "requires_payment_method" and declined.last_payment_error.code == "card_declined")

    # Webhook events, verified by the library.
    for event_type, object_id, obj_check in [
        ("payment_intent.succeeded", pi.id, lambda o: o.status == "succeeded" and o.metadata["order_id"] == order),
        ("payment_intent.payment_failed", other.id, lambda o: o.last_payment_error.code == "card_declined"),
        ("refund.created", refund.id, lambda o: o.amount == 1000),
        ("charge.refunded", paid.latest_charge, lambda o: o.payment_intent == pi.id),
    ]:
        body, signature = receiver.wait_for(event_type, object_id)
        event = stripe.Webhook.construct_event(body, signature, a.webhook_secret)
        check(f"{event_type}: signature verifies with stripe.Webhook.construct_event",
              isinstance(event, stripe.Event) and event.type == event_type)
        check(f"{event_type}: the event is about {object_id}", event.data.object.id == object_id and obj_check(event.data.object))
        check(f"{event_type}: event fields", event.id.startswith("evt_") and event.livemode is False
              and isinstance(event.created, int) and event.api_version)
        check(f"{event_type}: StripeClient.construct_event agrees",
              client.construct_event(body, signature, a.webhook_secret).id == event.id)
    raises("a tampered body", stripe.SignatureVerificationError,
           lambda: stripe.Webhook.construct_event(body.replace(b"false", b"true", 1), signature, a.webhook_secret))
    raises("another secret", stripe.SignatureVerificationError,
           lambda: stripe.Webhook.construct_event(body, signature, a.webhook_secret + "x"))

    print(f"stripe stand-in: all {checks} checks held")
    receiver.server.shutdown()


if __name__ == "__main__":
    main()
