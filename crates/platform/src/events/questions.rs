//! The questions a ticket type asks of each ticket's attendee at checkout
//! (the attendee's name by default), and the rules an answer keeps.

use kernel::error::Checks;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What kind of answer a question takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// A person's name.
    Name,
    Email,
    Phone,
    /// Free text, up to 1,000 characters.
    Text,
    /// One of `options`.
    Choice,
}

impl QuestionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionKind::Name => "name",
            QuestionKind::Email => "email",
            QuestionKind::Phone => "phone",
            QuestionKind::Text => "text",
            QuestionKind::Choice => "choice",
        }
    }

    pub fn parse(s: &str) -> Option<QuestionKind> {
        Some(match s {
            "name" => QuestionKind::Name,
            "email" => QuestionKind::Email,
            "phone" => QuestionKind::Phone,
            "text" => QuestionKind::Text,
            "choice" => QuestionKind::Choice,
            _ => return None,
        })
    }
}

/// A question asked once per ticket of its type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Question {
    /// Stable within the ticket type; answers are keyed by it.
    pub id: String,
    pub label: String,
    pub kind: QuestionKind,
    pub required: bool,
    /// The choices (`choice` questions only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A question as the organizer sends it; `id` is made from the label when
/// not given.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionInput {
    #[schema(pattern = r"^[a-z0-9_]{1,40}$")]
    pub id: Option<String>,
    /// Not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub label: String,
    pub kind: QuestionKind,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    #[schema(max_items = 50)]
    pub options: Vec<String>,
}

pub const MAX_QUESTIONS: usize = 20;
const MAX_OPTIONS: usize = 50;
const MAX_TEXT: usize = 1000;

/// What a ticket type asks when the organizer set nothing: the attendee's
/// name, optionally.
pub fn default_questions() -> Vec<Question> {
    vec![Question {
        id: "name".into(),
        label: "Attendee name".into(),
        kind: QuestionKind::Name,
        required: false,
        options: Vec::new(),
    }]
}

/// The stored list (`None`: the default questions).
pub fn stored(json: Option<&str>) -> Vec<Question> {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(default_questions)
}

/// The list as stored (`None` for the default, so a later default may change).
pub fn to_stored(qs: &[Question]) -> Option<String> {
    if qs == default_questions().as_slice() {
        None
    } else {
        serde_json::to_string(qs).ok()
    }
}

fn slug(label: &str) -> String {
    let mut s = String::new();
    for ch in label.chars().flat_map(char::to_lowercase) {
        if ch.is_ascii_alphanumeric() {
            s.push(ch);
        } else if !s.ends_with('_') && !s.is_empty() {
            s.push('_');
        }
        if s.len() >= 36 {
            break;
        }
    }
    let s = s.trim_end_matches('_').to_string();
    if s.is_empty() { "q".into() } else { s }
}

/// Checks the organizer's questions (fields named `questions[i]...`).
pub fn check(c: &mut Checks, input: &[QuestionInput]) -> Vec<Question> {
    if input.len() > MAX_QUESTIONS {
        c.fail("questions", "at most 20 questions per ticket type");
    }
    let mut out: Vec<Question> = Vec::with_capacity(input.len());
    for (i, q) in input.iter().enumerate().take(MAX_QUESTIONS) {
        let at = |f: &str| format!("questions[{i}].{f}");
        let label = c.take(&at("label"), kernel::parse::name(&q.label, 200));
        let id = match &q.id {
            Some(id)
                if (1..=40).contains(&id.len())
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
            {
                id.clone()
            }
            Some(_) => {
                c.fail(&at("id"), "must be 1 to 40 of a-z, 0-9 and _");
                continue;
            }
            None => {
                let base = slug(&q.label);
                let mut id = base.clone();
                let mut n = 2;
                while out.iter().any(|o| o.id == id)
                    || input.iter().any(|o| o.id.as_deref() == Some(id.as_str()))
                {
                    id = format!("{base}_{n}");
                    n += 1;
                }
                id
            }
        };
        if out.iter().any(|o| o.id == id) {
            c.fail(&at("id"), "appears twice");
        }
        let mut options = Vec::new();
        if q.kind == QuestionKind::Choice {
            if q.options.is_empty() || q.options.len() > MAX_OPTIONS {
                c.fail(&at("options"), "a choice needs 1 to 50 options");
            }
            for (j, o) in q.options.iter().enumerate().take(MAX_OPTIONS) {
                match kernel::parse::name(o, 100) {
                    Ok(o) if options.contains(&o) => {
                        c.fail(&format!("questions[{i}].options[{j}]"), "appears twice")
                    }
                    Ok(o) => options.push(o),
                    Err(e) => c.fail(&format!("questions[{i}].options[{j}]"), &e),
                }
            }
        } else if !q.options.is_empty() {
            c.fail(&at("options"), "only a choice question has options");
        }
        out.push(Question {
            id,
            label: label.unwrap_or_default(),
            kind: q.kind,
            required: q.required,
            options,
        });
    }
    out
}

/// An answer as it is kept, or why it is refused.
pub fn check_answer(q: &Question, answer: &str) -> Result<String, String> {
    let a = answer.trim();
    if a.chars().any(|ch| ch.is_control() && ch != '\n') {
        return Err("must not contain control characters".into());
    }
    match q.kind {
        QuestionKind::Name => kernel::parse::name(a, 200),
        QuestionKind::Email => {
            let ok = a.len() <= 254
                && a.split_once('@').is_some_and(|(l, d)| {
                    !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
                })
                && !a.contains(char::is_whitespace);
            if ok {
                Ok(a.to_string())
            } else {
                Err("must be an e-mail address".into())
            }
        }
        QuestionKind::Phone => {
            let digits = a.chars().filter(char::is_ascii_digit).count();
            let ok = a.len() <= 30
                && (6..=20).contains(&digits)
                && a.chars()
                    .all(|ch| ch.is_ascii_digit() || " +-().".contains(ch));
            if ok {
                Ok(a.to_string())
            } else {
                Err("must be a phone number, e.g. +27 82 555 0100".into())
            }
        }
        QuestionKind::Text => {
            if a.chars().count() > MAX_TEXT {
                Err("must be at most 1000 characters".into())
            } else {
                Ok(a.to_string())
            }
        }
        QuestionKind::Choice => match q.options.iter().find(|o| o.as_str() == a) {
            Some(o) => Ok(o.clone()),
            None => Err(format!("must be one of: {}", q.options.join(", "))),
        },
    }
}

/// A ticket's answers as (question, answer), in the questions' order (an
/// answer to a question since removed comes last, under its id).
pub fn labelled(
    questions: &[Question],
    answers: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = questions
        .iter()
        .filter_map(|q| answers.get(&q.id).map(|a| (q.label.clone(), a.clone())))
        .collect();
    for (id, a) in answers {
        if !questions.iter().any(|q| &q.id == id) {
            out.push((id.clone(), a.clone()));
        }
    }
    out
}

/// The attendee's name among the answers: the first `name` question's.
pub fn attendee_name<'a>(
    questions: &[Question],
    answers: &'a std::collections::BTreeMap<String, String>,
) -> Option<&'a str> {
    questions
        .iter()
        .filter(|q| q.kind == QuestionKind::Name)
        .find_map(|q| answers.get(&q.id))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(label: &str, kind: QuestionKind) -> QuestionInput {
        QuestionInput {
            id: None,
            label: label.into(),
            kind,
            required: true,
            options: if kind == QuestionKind::Choice {
                vec!["S".into(), "M".into()]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn ids_are_made_from_labels_and_kept_unique() {
        let mut c = Checks::default();
        let qs = check(
            &mut c,
            &[
                input("T-shirt size", QuestionKind::Choice),
                input("T-shirt size?", QuestionKind::Text),
                input("!!", QuestionKind::Text),
            ],
        );
        assert!(c.finish().is_ok());
        let ids: Vec<&str> = qs.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, ["t_shirt_size", "t_shirt_size_2", "q"]);
    }

    #[test]
    fn bad_questions_are_named() {
        let mut c = Checks::default();
        let mut choice = input("Size", QuestionKind::Choice);
        choice.options.clear();
        let mut text = input("Diet", QuestionKind::Text);
        text.options = vec!["x".into()];
        let mut bad_id = input("Shoe", QuestionKind::Text);
        bad_id.id = Some("Shoe Size".into());
        check(&mut c, &[choice, text, bad_id]);
        let fields: Vec<String> = match c.finish() {
            Err(kernel::ApiError::Validation { errors: errs, .. }) => {
                errs.into_iter().map(|e| e.field).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        };
        assert_eq!(
            fields,
            [
                "questions[0].options",
                "questions[1].options",
                "questions[2].id"
            ]
        );
    }

    #[test]
    fn answers_are_checked_by_kind() {
        let q = |kind| Question {
            id: "x".into(),
            label: "X".into(),
            kind,
            required: true,
            options: vec!["Vegan".into(), "None".into()],
        };
        assert!(check_answer(&q(QuestionKind::Email), "a@b.co").is_ok());
        assert!(check_answer(&q(QuestionKind::Email), "a@b").is_err());
        assert!(check_answer(&q(QuestionKind::Phone), "+27 82 555 0100").is_ok());
        assert!(check_answer(&q(QuestionKind::Phone), "call me").is_err());
        assert_eq!(
            check_answer(&q(QuestionKind::Choice), " Vegan ").as_deref(),
            Ok("Vegan")
        );
        assert!(check_answer(&q(QuestionKind::Choice), "Halal").is_err());
        assert!(check_answer(&q(QuestionKind::Text), &"x".repeat(1001)).is_err());
        assert!(check_answer(&q(QuestionKind::Name), "Thandi\u{0}").is_err());
    }
}
