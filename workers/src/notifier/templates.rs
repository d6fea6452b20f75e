//! Message templates per locale, kind and channel.
//!
//! A template can only name the placeholders of `Field`: clinic, date, time, zone and
//! join link. There is no field for a diagnosis, a note, a name or anything clinical,
//! and a template naming any other placeholder does not parse, so no template (built in
//! or supplied later) can put clinical content into a message.

use jiff::Zoned;
use std::fmt;
use telepipe_events::notify::NotificationKind;
use telepipe_events::sessions::ContactChannel;

/// What a template may say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Clinic,
    Date,
    Time,
    Zone,
    JoinLink,
}

impl Field {
    pub const ALL: [Field; 5] = [
        Self::Clinic,
        Self::Date,
        Self::Time,
        Self::Zone,
        Self::JoinLink,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Clinic => "clinic",
            Self::Date => "date",
            Self::Time => "time",
            Self::Zone => "zone",
            Self::JoinLink => "join_link",
        }
    }
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    UnknownPlaceholder(String),
    Unclosed,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownPlaceholder(name) => write!(
                f,
                "unknown placeholder {{{name}}}: templates may use only {{clinic}}, {{date}}, {{time}}, {{zone}}, {{join_link}}"
            ),
            Self::Unclosed => f.write_str("a '{' is not closed"),
        }
    }
}

impl std::error::Error for TemplateError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let close = rest[open..].find('}').ok_or(TemplateError::Unclosed)? + open;
            let name = &rest[open + 1..close];
            let field = Field::ALL
                .into_iter()
                .find(|f| f.name() == name)
                .ok_or_else(|| TemplateError::UnknownPlaceholder(name.to_owned()))?;
            parts.push(Part::Field(field));
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self(parts))
    }

    pub fn render(&self, context: &MessageContext) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field(field) => out.push_str(context.value(*field)),
            }
        }
        out
    }
}

/// Everything a message can say: nothing clinical exists here to be said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageContext {
    pub clinic: String,
    pub date: String,
    pub time: String,
    pub zone: String,
    pub join_link: String,
}

impl MessageContext {
    fn value(&self, field: Field) -> &str {
        match field {
            Field::Clinic => &self.clinic,
            Field::Date => &self.date,
            Field::Time => &self.time,
            Field::Zone => &self.zone,
            Field::JoinLink => &self.join_link,
        }
    }
}

/// Languages with templates; anything else falls back to English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    En,
    Es,
}

impl Language {
    /// From a BCP 47 tag (`es-MX` → Spanish).
    pub fn from_locale(locale: &str) -> Self {
        let primary = locale
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match primary.as_str() {
            "es" => Self::Es,
            _ => Self::En,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }

    /// Said when neither the booking nor the deployment has a join link.
    pub fn no_link(self) -> &'static str {
        match self {
            Self::En => "use the link in your booking confirmation",
            Self::Es => "use el enlace de su confirmación de cita",
        }
    }

    /// The appointment's date and time as a person in its zone reads them.
    pub fn date_and_time(self, at: &Zoned) -> (String, String) {
        const EN_DAYS: [&str; 7] = [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ];
        const EN_MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        const ES_DAYS: [&str; 7] = [
            "lunes",
            "martes",
            "miércoles",
            "jueves",
            "viernes",
            "sábado",
            "domingo",
        ];
        const ES_MONTHS: [&str; 12] = [
            "enero",
            "febrero",
            "marzo",
            "abril",
            "mayo",
            "junio",
            "julio",
            "agosto",
            "septiembre",
            "octubre",
            "noviembre",
            "diciembre",
        ];
        let weekday = at.weekday().to_monday_zero_offset() as usize;
        let month = (at.month() - 1) as usize;
        match self {
            Self::En => {
                let hour12 = match at.hour() % 12 {
                    0 => 12,
                    h => h,
                };
                let meridiem = if at.hour() < 12 { "AM" } else { "PM" };
                (
                    format!("{}, {} {}", EN_DAYS[weekday], EN_MONTHS[month], at.day()),
                    format!("{hour12}:{:02} {meridiem}", at.minute()),
                )
            }
            Self::Es => (
                format!("{} {} de {}", ES_DAYS[weekday], at.day(), ES_MONTHS[month]),
                format!("{}:{:02}", at.hour(), at.minute()),
            ),
        }
    }
}

/// The text of one message: a subject for email, and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTemplates {
    pub subject: Option<Template>,
    pub body: Template,
}

/// The built-in template text of a language, kind and channel: (subject, body).
fn builtin_text(
    language: Language,
    kind: NotificationKind,
    channel: ContactChannel,
) -> (Option<&'static str>, &'static str) {
    use ContactChannel::*;
    use Language::*;
    use NotificationKind::*;
    match (language, kind, channel) {
        (En, Reminder, Sms) => (None, "Reminder: video visit with {clinic} on {date} at {time} ({zone}). Join: {join_link} Reply C to confirm, R to reschedule"),
        (En, Reminder, Email) => (
            Some("Reminder: your video visit on {date}"),
            "Hello,\n\nThis is a reminder of your video visit with {clinic} on {date} at {time} ({zone}).\n\nJoin: {join_link}\n\nPlease do not reply to this message.",
        ),
        (En, Confirmation, Sms) => (None, "Your video visit with {clinic} is confirmed for {date} at {time} ({zone}). Join: {join_link}"),
        (En, Confirmation, Email) => (
            Some("Your video visit on {date} is confirmed"),
            "Hello,\n\nYour video visit with {clinic} is confirmed for {date} at {time} ({zone}).\n\nJoin: {join_link}\n\nPlease do not reply to this message.",
        ),
        (En, WaitingRoomAlert, Sms) => (None, "{clinic}: your patient for the {time} ({zone}) video visit is in the waiting room. Join: {join_link}"),
        (En, WaitingRoomAlert, Email) => (
            Some("Your patient is in the waiting room"),
            "Your patient for the {time} ({zone}) video visit at {clinic} is in the waiting room.\n\nJoin: {join_link}",
        ),
        (Es, Reminder, Sms) => (None, "Consulta por video con {clinic} el {date} a las {time} ({zone}). Acceda: {join_link} Responda C para confirmar, R para cambiar"),
        (Es, Reminder, Email) => (
            Some("Recordatorio: su consulta por video el {date}"),
            "Hola:\n\nLe recordamos su consulta por video con {clinic} el {date} a las {time} ({zone}).\n\nAcceda: {join_link}\n\nPor favor, no responda a este mensaje.",
        ),
        (Es, Confirmation, Sms) => (None, "Su consulta por video con {clinic} está confirmada para el {date} a las {time} ({zone}). Acceda: {join_link}"),
        (Es, Confirmation, Email) => (
            Some("Su consulta por video del {date} está confirmada"),
            "Hola:\n\nSu consulta por video con {clinic} está confirmada para el {date} a las {time} ({zone}).\n\nAcceda: {join_link}\n\nPor favor, no responda a este mensaje.",
        ),
        (Es, WaitingRoomAlert, Sms) => (None, "{clinic}: su paciente de la consulta de las {time} ({zone}) está en la sala de espera. Acceda: {join_link}"),
        (Es, WaitingRoomAlert, Email) => (
            Some("Su paciente está en la sala de espera"),
            "Su paciente de la consulta por video de las {time} ({zone}) en {clinic} está en la sala de espera.\n\nAcceda: {join_link}",
        ),
        (En, CancellationNotice, Sms) => (None, "{clinic}: your video visit on {date} at {time} ({zone}) has been cancelled. Please contact the clinic to book again."),
        (En, CancellationNotice, Email) => (
            Some("Your video visit on {date} was cancelled"),
            "Hello,\n\nYour video visit with {clinic} on {date} at {time} ({zone}) has been cancelled. Please contact the clinic to book again.\n\nPlease do not reply to this message.",
        ),
        (Es, CancellationNotice, Sms) => (None, "{clinic}: su consulta por video del {date} a las {time} ({zone}) fue cancelada. Contacte a la clínica para reservar otra."),
        (Es, CancellationNotice, Email) => (
            Some("Su consulta por video del {date} fue cancelada"),
            "Hola:\n\nSu consulta por video con {clinic} del {date} a las {time} ({zone}) fue cancelada. Contacte a la clínica para reservar otra.\n\nPor favor, no responda a este mensaje.",
        ),
        (En, RescheduleNotice, Sms) => (None, "{clinic}: your video visit has moved to {date} at {time} ({zone}). Join: {join_link}"),
        (En, RescheduleNotice, Email) => (
            Some("Your video visit has moved to {date}"),
            "Hello,\n\nYour video visit with {clinic} has moved to {date} at {time} ({zone}).\n\nJoin: {join_link}\n\nPlease do not reply to this message.",
        ),
        (Es, RescheduleNotice, Sms) => (None, "{clinic}: su consulta por video pasó al {date} a las {time} ({zone}). Acceda: {join_link}"),
        (Es, RescheduleNotice, Email) => (
            Some("Su consulta por video pasó al {date}"),
            "Hola:\n\nSu consulta por video con {clinic} pasó al {date} a las {time} ({zone}).\n\nAcceda: {join_link}\n\nPor favor, no responda a este mensaje.",
        ),
        (En, Help, Sms) => (None, "{clinic}: reply C to confirm your next visit, R to ask for a new time, STOP to stop texts. Join: {join_link}"),
        (En, Help, Email) => (
            Some("How to answer our texts"),
            "Reply C to confirm your next visit with {clinic}, R to ask for a new time, STOP to stop texts.\n\nJoin: {join_link}",
        ),
        (Es, Help, Sms) => (None, "{clinic}: responda C para confirmar su consulta, R para cambiarla, PARAR para no recibir mensajes. Acceda: {join_link}"),
        (Es, Help, Email) => (
            Some("Cómo responder a nuestros mensajes"),
            "Responda C para confirmar su próxima consulta con {clinic}, R para cambiarla, PARAR para no recibir mensajes.\n\nAcceda: {join_link}",
        ),
    }
}

/// The built-in templates of a language, kind and channel.
pub fn builtin(
    language: Language,
    kind: NotificationKind,
    channel: ContactChannel,
) -> MessageTemplates {
    let (subject, body) = builtin_text(language, kind, channel);
    MessageTemplates {
        subject: subject.map(|s| Template::parse(s).expect("built-in subjects parse")),
        body: Template::parse(body).expect("built-in bodies parse"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [NotificationKind; 3] = [
        NotificationKind::Reminder,
        NotificationKind::Confirmation,
        NotificationKind::WaitingRoomAlert,
    ];

    #[test]
    fn patient_notices_say_what_they_must_in_both_languages() {
        let context = MessageContext {
            clinic: "<clinic>".into(),
            date: "<date>".into(),
            time: "<time>".into(),
            zone: "<zone>".into(),
            join_link: "<link>".into(),
        };
        for language in [Language::En, Language::Es] {
            for channel in [ContactChannel::Sms, ContactChannel::Email] {
                for (kind, needed) in [
                    (
                        NotificationKind::CancellationNotice,
                        &["<clinic>", "<date>", "<time>", "<zone>"][..],
                    ),
                    (
                        NotificationKind::RescheduleNotice,
                        &["<clinic>", "<date>", "<time>", "<zone>", "<link>"][..],
                    ),
                    (NotificationKind::Help, &["<clinic>", "<link>"][..]),
                ] {
                    let body = builtin(language, kind, channel).body.render(&context);
                    for field in needed {
                        assert!(
                            body.contains(field),
                            "{language:?} {kind:?} {channel:?} lacks {field}"
                        );
                    }
                    if channel == ContactChannel::Sms {
                        assert!(body.chars().count() < 150, "{language:?} {kind:?}: {body}");
                    }
                }
            }
        }
        // Reminders say what to reply; the help text names the opt-out word.
        let reminder = builtin(
            Language::En,
            NotificationKind::Reminder,
            ContactChannel::Sms,
        );
        assert!(reminder
            .body
            .render(&context)
            .contains("Reply C to confirm, R to reschedule"));
        let help = builtin(Language::Es, NotificationKind::Help, ContactChannel::Sms);
        assert!(help.body.render(&context).contains("PARAR"));
    }

    #[test]
    fn templates_cannot_name_clinical_or_personal_fields() {
        for field in [
            "diagnosis",
            "notes",
            "clinician_notes",
            "condition",
            "medication",
            "patient_name",
            "transcript",
            "address",
        ] {
            assert_eq!(
                Template::parse(&format!("Hi {{{field}}}")),
                Err(TemplateError::UnknownPlaceholder(field.to_owned())),
                "{field}"
            );
        }
        assert_eq!(Template::parse("Hi {clinic"), Err(TemplateError::Unclosed));
    }

    #[test]
    fn every_builtin_template_parses_and_uses_every_required_field() {
        let context = MessageContext {
            clinic: "<clinic>".into(),
            date: "<date>".into(),
            time: "<time>".into(),
            zone: "<zone>".into(),
            join_link: "<link>".into(),
        };
        for language in [Language::En, Language::Es] {
            for kind in KINDS {
                for channel in [ContactChannel::Sms, ContactChannel::Email] {
                    let templates = builtin(language, kind, channel);
                    let body = templates.body.render(&context);
                    for needed in ["<clinic>", "<time>", "<zone>", "<link>"] {
                        assert!(
                            body.contains(needed),
                            "{language:?} {kind:?} {channel:?} lacks {needed}"
                        );
                    }
                    assert_eq!(
                        templates.subject.is_some(),
                        channel == ContactChannel::Email
                    );
                    if channel == ContactChannel::Sms {
                        // One SMS segment of UCS-2 is 70 characters; keep each under 3 segments with a long link.
                        assert!(
                            body.chars().count() < 150,
                            "{language:?} {kind:?}: {} chars",
                            body.chars().count()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn dates_read_naturally_in_each_language() {
        let at: Zoned = "2026-03-09T15:05:00-04:00[America/New_York]"
            .parse()
            .unwrap();
        assert_eq!(
            Language::En.date_and_time(&at),
            ("Monday, March 9".into(), "3:05 PM".into())
        );
        assert_eq!(
            Language::Es.date_and_time(&at),
            ("lunes 9 de marzo".into(), "15:05".into())
        );
        assert_eq!(Language::from_locale("es-MX"), Language::Es);
        assert_eq!(Language::from_locale("fr"), Language::En);
    }
}
