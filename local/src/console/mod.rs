//! `telepipe serve`: a web console over a data directory for clinicians (the visit: audio,
//! transcript by speaker, highlighted findings with codes, the summary) and operators
//! (timelines, queues, dead letters with a dry-run-first replay, the outbox); and
//! `telepipe report`: one visit as a self-contained HTML file.
//!
//! The pages show PHI, so the console binds to 127.0.0.1 only, answers only requests
//! whose `Host` is that address (no DNS rebinding), and requires a random token: given
//! once in the URL it prints, then carried by a `SameSite=Strict`, `HttpOnly` cookie.
//! Every response forbids caching, framing, referrers and any script, style or media from
//! elsewhere (pages are self-contained and work offline).
//!
//! - `visit`: the visit decided from a results document (pure);
//! - `data`: what is read from the data directory;
//! - `pages`: the markup.

pub mod data;
pub mod pages;
pub mod visit;

use axum::body::Body;
use axum::extract::{Form, Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use data::DataDir;
use pages::Audio;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use telepipe_events::ids::SessionId;
use telepipe_ops::journal::{local_journal_path, FileJournal, MemoryJournal};
use telepipe_ops::port::DlqAdmin;
use telepipe_ops::replay::{replay, ReplayOptions};
use telepipe_workers::clock::now_ms;

/// The cookie that carries the access token after the first request.
const COOKIE: &str = "telepipe_console";
/// Dead letters shown per queue on the operations page.
const PEEK: usize = 20;
/// Most bytes of a recording sent in one response (the player asks for the rest).
const MAX_RANGE: u64 = 4 * 1024 * 1024;

struct Console {
    data_dir: PathBuf,
    token: String,
    /// `127.0.0.1:PORT` and `localhost:PORT`: the only hosts answered.
    hosts: [String; 2],
}

/// Equal strings, compared in time independent of where they differ.
fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "token").then(|| value.to_owned())
    })
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_owned())
        })
}

fn status(code: StatusCode, text: &'static str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Host check, then the token: in the query (answered with the cookie and a redirect to
/// the same page without it, so it leaves the address bar and history) or the cookie.
async fn guard(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !console.hosts.iter().any(|allowed| allowed == host) {
        return status(StatusCode::MISDIRECTED_REQUEST, "unknown host\n");
    }
    if let Some(given) = query_token(request.uri().query()) {
        if !same_secret(&given, &console.token) {
            return status(StatusCode::UNAUTHORIZED, "wrong token\n");
        }
        let cookie = format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            console.token
        );
        let location = request.uri().path().to_owned();
        return (
            StatusCode::SEE_OTHER,
            [(header::SET_COOKIE, cookie), (header::LOCATION, location)],
        )
            .into_response();
    }
    match cookie_token(request.headers()) {
        Some(given) if same_secret(&given, &console.token) => next.run(request).await,
        _ => status(
            StatusCode::UNAUTHORIZED,
            "open the URL telepipe serve printed (it carries the access token)\n",
        ),
    }
}

/// What every response says about itself: not to be cached, framed or referred from, and
/// nothing loaded from anywhere else.
async fn protect(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
             media-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; \
             frame-ancestors 'none'",
        ),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn page(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

fn problem(code: StatusCode, title: &str, detail: &str) -> Response {
    (code, page(pages::problem(title, detail))).into_response()
}

/// A handler's early answer (boxed: a response is large next to what handlers return).
type Early = Box<Response>;

fn open(console: &Console) -> Result<DataDir, Early> {
    DataDir::open(&console.data_dir).map_err(|e| {
        Box::new(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Data directory",
            &e,
        ))
    })
}

async fn overview(State(console): State<Arc<Console>>) -> Response {
    let data = match open(&console) {
        Ok(data) => data,
        Err(response) => return *response,
    };
    match data.overview() {
        Ok(sessions) => page(pages::overview(&sessions)),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, "Sessions", &e),
    }
}

/// A session id from the address, refused unless it is one (it names folders).
fn session(raw: &str) -> Result<SessionId, Early> {
    SessionId::parse(raw).map_err(|e| {
        Box::new(problem(
            StatusCode::BAD_REQUEST,
            "Not a session id",
            &e.to_string(),
        ))
    })
}

async fn visit_page(
    State(console): State<Arc<Console>>,
    UrlPath(raw): UrlPath<String>,
) -> Response {
    let (session, data) = match (session(&raw), open(&console)) {
        (Ok(session), Ok(data)) => (session, data),
        (Err(response), _) | (_, Err(response)) => return *response,
    };
    let documents = match data.results(session.as_str()) {
        Ok(documents) => documents,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, "Results", &e),
    };
    let known = !documents.is_empty()
        || data
            .session_ids()
            .is_ok_and(|ids| ids.iter().any(|id| id == session.as_str()));
    if !known {
        return problem(
            StatusCode::NOT_FOUND,
            "No such session",
            "nothing is known of this session in the data directory",
        );
    }
    let visits: Vec<_> = documents.iter().map(visit::visit).collect();
    let audio = match data.audio(session.as_str()) {
        Some(_) => Audio::Url(format!("/sessions/{session}/audio")),
        None => Audio::None,
    };
    page(pages::visit(session.as_str(), &visits, &audio, false))
}

/// `bytes=FROM-[TO]` of a file of `size` bytes, capped at `MAX_RANGE`.
fn byte_range(headers: &HeaderMap, size: u64) -> Option<(u64, u64)> {
    let spec = headers
        .get(header::RANGE)?
        .to_str()
        .ok()?
        .strip_prefix("bytes=")?;
    let (from, to) = spec.split_once('-')?;
    let from: u64 = from.trim().parse().ok()?;
    let to = match to.trim() {
        "" => size.checked_sub(1)?,
        to => to.parse::<u64>().ok()?.min(size.checked_sub(1)?),
    };
    (from <= to).then(|| (from, to.min(from + MAX_RANGE - 1)))
}

/// The recording, with byte ranges (how a player seeks).
async fn audio(
    State(console): State<Arc<Console>>,
    UrlPath(raw): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let (session, data) = match (session(&raw), open(&console)) {
        (Ok(session), Ok(data)) => (session, data),
        (Err(response), _) | (_, Err(response)) => return *response,
    };
    let Some(path) = data.audio(session.as_str()) else {
        return status(StatusCode::NOT_FOUND, "no recording\n");
    };
    let read = || -> std::io::Result<Response> {
        let mut file = std::fs::File::open(&path)?;
        let size = file.metadata()?.len();
        let mime = data::audio_mime(&path);
        let (code, from, to) = match byte_range(&headers, size) {
            Some((from, to)) => (StatusCode::PARTIAL_CONTENT, from, to),
            None if headers.contains_key(header::RANGE) => {
                return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                )
                    .into_response())
            }
            None => (StatusCode::OK, 0, size.saturating_sub(1).min(MAX_RANGE - 1)),
        };
        let mut bytes = vec![
            0u8;
            if size == 0 {
                0
            } else {
                (to - from + 1) as usize
            }
        ];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut bytes)?;
        let mut response = Response::new(Body::from(bytes));
        // A whole file larger than one range is still announced as ranged, so the player
        // asks for the rest.
        let code = if code == StatusCode::OK && size > MAX_RANGE {
            StatusCode::PARTIAL_CONTENT
        } else {
            code
        };
        *response.status_mut() = code;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if code == StatusCode::PARTIAL_CONTENT {
            let range = format!("bytes {from}-{to}/{size}");
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&range).expect("ascii"),
            );
        }
        Ok(response)
    };
    read().unwrap_or_else(|e| {
        problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Recording",
            &e.kind().to_string(),
        )
    })
}

async fn operations(State(console): State<Arc<Console>>) -> Response {
    let data = match open(&console) {
        Ok(data) => data,
        Err(response) => return *response,
    };
    let admin = crate::dlq::LocalDlqAdmin::new(data.queues.clone());
    let gathered = async {
        let queues = data.queue_depths()?;
        let mut dead_letters = Vec::new();
        for info in admin.list().await.map_err(|e| e.to_string())? {
            let messages = admin
                .peek(&info.queue, PEEK)
                .await
                .map_err(|e| e.to_string())?;
            dead_letters.push((info, messages));
        }
        Ok::<_, String>((queues, dead_letters))
    };
    match gathered.await {
        Ok((queues, dead_letters)) => page(pages::operations(
            &queues,
            &dead_letters,
            &data.outbox(),
            now_ms(),
        )),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, "Operations", &e),
    }
}

#[derive(serde::Deserialize)]
struct ReplayForm {
    queue: String,
    /// `dry-run` (what the first button sends) or `replay`.
    mode: String,
}

/// Replays a dead-letter queue to its source: a dry run unless the form says `replay`
/// (the button on a dry run's answer), journaled where the command line journals it.
async fn replay_queue(
    State(console): State<Arc<Console>>,
    Form(form): Form<ReplayForm>,
) -> Response {
    let data = match open(&console) {
        Ok(data) => data,
        Err(response) => return *response,
    };
    let admin = crate::dlq::LocalDlqAdmin::new(data.queues.clone());
    let dlq = match admin.find(&form.queue).await {
        Ok(dlq) => dlq,
        Err(e) => return problem(StatusCode::NOT_FOUND, "No such queue", &e.to_string()),
    };
    let Some(target) = dlq.source.clone() else {
        return problem(
            StatusCode::CONFLICT,
            "No source queue",
            "this dead-letter queue's source is not known: replay it with telepipe dlq replay --to",
        );
    };
    let dry_run = form.mode != "replay";
    let mut options = ReplayOptions::new(&dlq.queue, &dlq.name, &target, now_ms());
    options.dry_run = dry_run;
    let journal_path = local_journal_path(data.root(), &dlq.name);
    let mut progress = |_: &telepipe_ops::replay::ReplayReport| {};
    // A dry run writes nothing, not even a new journal file.
    let outcome = if dry_run && !journal_path.exists() {
        replay(
            &admin,
            &mut MemoryJournal::default(),
            &options,
            &mut progress,
        )
        .await
    } else {
        match FileJournal::open(&journal_path) {
            Ok(mut journal) => replay(&admin, &mut journal, &options, &mut progress).await,
            Err(e) => {
                return problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Replay journal",
                    &e.to_string(),
                )
            }
        }
    };
    match outcome {
        Ok(report) => page(pages::replayed(&dlq.name, dry_run, &report)),
        Err(failure) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Replay stopped",
            &format!("{:?}", failure.error),
        ),
    }
}

fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/sessions/{session}", get(visit_page))
        .route("/sessions/{session}/audio", get(audio))
        .route("/operations", get(operations))
        .route("/operations/replay", post(replay_queue))
        .route_layer(middleware::from_fn_with_state(console.clone(), guard))
        .layer(middleware::from_fn(protect))
        .with_state(console)
}

/// Serves the console on 127.0.0.1:`port` (0: any free port) until Ctrl-C; prints the
/// tokened URL as the first line of standard output.
pub fn serve(data_dir: &Path, port: u16) -> Result<(), String> {
    DataDir::open(data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let token = crate::db::random_secret_hex().map_err(|e| format!("no random token: {e}"))?;
        let console = Arc::new(Console {
            data_dir: data_dir.to_path_buf(),
            hosts: [format!("127.0.0.1:{port}"), format!("localhost:{port}")],
            token,
        });
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "http://127.0.0.1:{port}/?token={}", console.token);
            let _ = out.flush();
        }
        eprintln!(
            "serving {} on 127.0.0.1:{port} only; the URL above carries the access token (Ctrl-C stops)",
            data_dir.display()
        );
        axum::serve(listener, router(console))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| e.to_string())
    })
}

/// Writes one visit as a self-contained HTML file (inline CSS and script; the recording
/// left out, or embedded with `embed_audio`), readable by its owner only (mode 0600).
pub fn report(data_dir: &Path, session: &str, out: &Path, embed_audio: bool) -> Result<(), String> {
    let session = SessionId::parse(session).map_err(|e| format!("--session: {e}"))?;
    let data = DataDir::open(data_dir)?;
    let documents = data.results(session.as_str())?;
    if documents.is_empty() {
        return Err(format!(
            "no results document for session {session} in {}: is it transcribed yet? (telepipe status)",
            data_dir.display()
        ));
    }
    let visits: Vec<_> = documents.iter().map(visit::visit).collect();
    let audio = match (embed_audio, data.audio(session.as_str())) {
        (true, Some(path)) => {
            use base64::Engine;
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            Audio::Embedded(format!(
                "data:{};base64,{}",
                data::audio_mime(&path),
                base64::engine::general_purpose::STANDARD.encode(bytes)
            ))
        }
        (true, None) => return Err(format!("session {session} has no recording to embed")),
        (false, _) => Audio::None,
    };
    let html = pages::visit(session.as_str(), &visits, &audio, true).into_string();
    write_private(out, html.as_bytes()).map_err(|e| format!("{}: {e}", out.display()))
}

/// Writes `bytes` to `path` readable and writable by the owner only, whatever was there.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // An existing file keeps its mode on open: narrow it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert_eq!(crate::db::random_secret_hex().unwrap().len(), 64);
        assert_ne!(
            crate::db::random_secret_hex().unwrap(),
            crate::db::random_secret_hex().unwrap()
        );
    }

    #[test]
    fn ranges_are_parsed_and_capped() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=0-"));
        assert_eq!(byte_range(&headers, 100), Some((0, 99)));
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=10-19"));
        assert_eq!(byte_range(&headers, 100), Some((10, 19)));
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=200-"));
        assert_eq!(byte_range(&headers, 100), None);
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=0-"));
        assert_eq!(
            byte_range(&headers, 10 * MAX_RANGE),
            Some((0, MAX_RANGE - 1))
        );
    }

    #[test]
    fn the_token_is_read_from_the_query_and_the_cookie() {
        assert_eq!(query_token(Some("a=1&token=xyz")), Some("xyz".into()));
        assert_eq!(query_token(None), None);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; telepipe_console=abc"),
        );
        assert_eq!(cookie_token(&headers), Some("abc".into()));
    }
}
