//! A fake Telegram Bot API server: `getMe`, `getUpdates` (long polling with offsets), `sendMessage`,
//! `sendPhoto` (multipart), `setMyCommands`, `deleteWebhook`, `answerCallbackQuery`, with Telegram's
//! JSON shapes and error format. It checks the bot token like the real one, and can answer 429 with
//! `retry_after`, go down, or answer slowly. The test injects users' messages and button presses and
//! reads what the bot sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::http::{find, read_request};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

pub const BOT_ID: i64 = 999_000;

/// One message the bot sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub chat: i64,
    pub text: String,
    pub silent: bool,
    pub buttons: Vec<String>,
    pub photo: Option<Vec<u8>>,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    updates: Vec<Value>,
    next_update: i64,
    next_message: i64,
    sent: Vec<Sent>,
    commands: Vec<Value>,
    callbacks_answered: Vec<String>,
    fail_429: u32,
    retry_after: u32,
    down_until: Option<Instant>,
    delay: Duration,
    requests: HashMap<String, u64>,
    last_429: Option<Instant>,
    /// Another process polls the bot: `getUpdates` answers 409.
    conflict: bool,
    /// Chats that blocked the bot: Telegram answers 403 to every send there.
    blocked: std::collections::HashSet<i64>,
    /// Chats where the bot may not write (muted): 400 "Bad Request: CHAT_WRITE_FORBIDDEN".
    muted: std::collections::HashSet<i64>,
    /// Refused sends per chat.
    refused: HashMap<i64, u64>,
    /// Every parse_mode seen on a send.
    parse_modes: Vec<String>,
    /// Telegram's refusals of messages as they were sent (too long, bad HTML).
    bad_requests: Vec<String>,
    /// How many of `bad_requests` the test has read (and so handles).
    bad_requests_read: usize,
    /// Buttons removed (editMessageReplyMarkup): (chat, message id).
    markups_removed: Vec<(i64, i64)>,
    /// Chats where the bot may send text but not photos (a group's member rights).
    no_photos: std::collections::HashSet<i64>,
    /// A webhook is set on the token: `getUpdates` answers 409 until `deleteWebhook`.
    webhook: bool,
    /// `getMe` answers 502 while set.
    get_me_down: bool,
    /// Groups upgraded to supergroups: old id → new id (sends to the old id are refused).
    migrated: HashMap<i64, i64>,
}

pub struct FakeTelegram {
    pub url: String,
    pub token: String,
    state: Arc<Mutex<State>>,
}

/// A message Telegram refused as it was sent (too long, bad HTML) is a bug of ours unless the test
/// said it means to send one: every test with Telegram checks this on its way out.
impl Drop for FakeTelegram {
    fn drop(&mut self) {
        let s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !std::thread::panicking() {
            let unread = &s.bad_requests[s.bad_requests_read..];
            assert!(unread.is_empty(), "Telegram refused messages as sent: {unread:?}");
        }
    }
}

fn chat_json(chat: i64) -> Value {
    if chat < 0 {
        json!({"id": chat, "type": "group", "title": "ops"})
    } else {
        json!({"id": chat, "type": "private", "first_name": "op"})
    }
}

fn now_s() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

impl FakeTelegram {
    pub async fn start(token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let state: Arc<Mutex<State>> = Arc::default();
        state.lock().unwrap().next_update = 1;
        let (st, tok) = (state.clone(), token.to_owned());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (st, tok) = (st.clone(), tok.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, st, tok).await;
                });
            }
        });
        Self { url: format!("http://{addr}"), token: token.to_owned(), state }
    }

    /// A user in `chat` sends `text`.
    pub fn inject_message(&self, chat: i64, text: &str) {
        self.inject_message_from(chat, chat.unsigned_abs(), text);
    }

    /// User `user` writes `text` in `chat` (a group, say).
    pub fn inject_message_from(&self, chat: i64, user: u64, text: &str) {
        self.inject_message_sent(chat, user, text, now_s());
    }

    /// The operator wrote `text` `ago_s` seconds ago (while the daemon was down, say): Telegram
    /// keeps it, with the time it was sent, for the next poll.
    pub fn inject_message_sent_ago(&self, chat: i64, text: &str, ago_s: i64) {
        self.inject_message_sent(chat, chat.unsigned_abs(), text, now_s() - ago_s);
    }

    /// The operator edits an earlier message of theirs into `text` (a typo fixed).
    pub fn inject_edited_message(&self, chat: i64, text: &str) {
        self.inject_message_sent(chat, chat.unsigned_abs(), text, now_s());
        let mut s = self.state.lock().unwrap();
        let mut u = s.updates.pop().unwrap();
        let mut msg = u["message"].take();
        msg["edit_date"] = json!(now_s());
        u.as_object_mut().unwrap().remove("message");
        u["edited_message"] = msg;
        s.updates.push(u);
    }

    fn inject_message_sent(&self, chat: i64, user: u64, text: &str, date: i64) {
        let mut s = self.state.lock().unwrap();
        let (u, m) = (s.next_update, s.next_message + 1_000_000);
        s.next_update += 1;
        s.next_message += 1;
        let cmd_len = text.split_whitespace().next().unwrap_or("").len();
        let mut msg = json!({"message_id": m, "date": date, "chat": chat_json(chat),
            "from": {"id": user, "is_bot": false, "first_name": "op"}, "text": text});
        if text.starts_with('/') {
            msg["entities"] = json!([{"type": "bot_command", "offset": 0, "length": cmd_len}]);
        }
        s.updates.push(json!({"update_id": u, "message": msg}));
    }

    /// A user in `chat` presses an inline button carrying `data`.
    pub fn inject_callback(&self, chat: i64, data: &str) {
        self.inject_callback_from(chat, chat.unsigned_abs(), data);
    }

    /// User `user` presses a button carrying `data` in `chat`.
    pub fn inject_callback_from(&self, chat: i64, user: u64, data: &str) {
        let mut s = self.state.lock().unwrap();
        let u = s.next_update;
        s.next_update += 1;
        let message = json!({"message_id": 1, "date": now_s(), "chat": chat_json(chat),
            "from": {"id": BOT_ID, "is_bot": true, "first_name": "polycopy", "username": "polycopy_test_bot"}, "text": "resume?"});
        s.updates.push(json!({"update_id": u, "callback_query": {"id": format!("cb{u}"),
            "from": {"id": user, "is_bot": false, "first_name": "op"}, "message": message,
            "chat_instance": "ci", "data": data}}));
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.state.lock().unwrap().sent.clone()
    }

    pub fn sent_to(&self, chat: i64) -> Vec<Sent> {
        self.sent().into_iter().filter(|m| m.chat == chat).collect()
    }

    pub fn commands(&self) -> Vec<Value> {
        self.state.lock().unwrap().commands.clone()
    }

    pub fn callbacks_answered(&self) -> Vec<String> {
        self.state.lock().unwrap().callbacks_answered.clone()
    }

    pub fn requests(&self, method: &str) -> u64 {
        self.state.lock().unwrap().requests.get(&method.to_ascii_lowercase()).copied().unwrap_or(0)
    }

    /// When a 429 was last answered.
    pub fn last_429(&self) -> Option<Instant> {
        self.state.lock().unwrap().last_429
    }

    /// The next `n` sends are answered 429 with `retry_after` seconds.
    pub fn fail_429(&self, n: u32, retry_after: u32) {
        let mut s = self.state.lock().unwrap();
        s.fail_429 = n;
        s.retry_after = retry_after;
    }

    /// Every request fails with 502 for `d`.
    pub fn down_for(&self, d: Duration) {
        self.state.lock().unwrap().down_until = Some(Instant::now() + d);
    }

    /// The user of `chat` blocks the bot (Telegram: 403 "bot was blocked by the user"), or unblocks it.
    pub fn block(&self, chat: i64, blocked: bool) {
        let mut s = self.state.lock().unwrap();
        if blocked {
            s.blocked.insert(chat);
        } else {
            s.blocked.remove(&chat);
        }
    }

    /// The bot is muted in `chat` (a group's member rights), or may write again: Telegram answers
    /// every send there 400 "Bad Request: CHAT_WRITE_FORBIDDEN", a refusal that names no rights.
    pub fn mute(&self, chat: i64, muted: bool) {
        let mut s = self.state.lock().unwrap();
        if muted {
            s.muted.insert(chat);
        } else {
            s.muted.remove(&chat);
        }
    }

    /// Sends to `chat` refused so far.
    pub fn refused(&self, chat: i64) -> u64 {
        self.state.lock().unwrap().refused.get(&chat).copied().unwrap_or(0)
    }

    /// Telegram's refusals of messages as they were sent (too long, bad HTML), in order. The test
    /// handles those it read; any refused later still fails it.
    pub fn bad_requests(&self) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        s.bad_requests_read = s.bad_requests.len();
        s.bad_requests.clone()
    }

    /// The parse modes the bot asked for.
    pub fn parse_modes(&self) -> Vec<String> {
        self.state.lock().unwrap().parse_modes.clone()
    }

    /// Messages whose buttons the bot removed.
    pub fn markups_removed(&self) -> Vec<(i64, i64)> {
        self.state.lock().unwrap().markups_removed.clone()
    }

    /// Another process polls this bot (or stops): `getUpdates` answers 409 Conflict, as Telegram
    /// does to the poll that another one cut off.
    pub fn conflict(&self, on: bool) {
        self.state.lock().unwrap().conflict = on;
    }

    /// The bot may no longer send photos to `chat` (a group's rights): `sendPhoto` there answers
    /// 400 "not enough rights to send photos to the chat"; text still goes.
    pub fn no_photos(&self, chat: i64) {
        self.state.lock().unwrap().no_photos.insert(chat);
    }

    /// A webhook is set on the token (another tool, an earlier bot): `getUpdates` answers 409, as
    /// Telegram does, until `deleteWebhook` is called.
    pub fn set_webhook(&self) {
        self.state.lock().unwrap().webhook = true;
    }

    /// The group `old` is upgraded to a supergroup `new`, as Telegram does it: the service message
    /// arrives in the old chat, and every send there is refused with 400 and `migrate_to_chat_id`.
    pub fn migrate(&self, old: i64, new: i64) {
        let mut s = self.state.lock().unwrap();
        s.migrated.insert(old, new);
        let (u, m) = (s.next_update, s.next_message + 1_000_000);
        s.next_update += 1;
        s.next_message += 1;
        let msg = json!({"message_id": m, "date": now_s(), "chat": chat_json(old),
            "from": {"id": 42, "is_bot": false, "first_name": "op"}, "migrate_to_chat_id": new});
        s.updates.push(json!({"update_id": u, "message": msg}));
    }

    /// `getMe` fails (502) while `down`, every other method answers.
    pub fn get_me_down(&self, down: bool) {
        self.state.lock().unwrap().get_me_down = down;
    }

    /// Every answer is delayed by `d`.
    pub fn slow(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }
}

/// Multipart fields: name → bytes.
fn multipart(body: &[u8], ctype: &str) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let Some(boundary) = ctype.split("boundary=").nth(1).map(|b| format!("--{}", b.trim_matches('"'))) else {
        return out;
    };
    let b = boundary.as_bytes();
    let mut rest = body;
    while let Some(i) = find(rest, b) {
        rest = &rest[i + b.len()..];
        let Some(h) = find(rest, b"\r\n\r\n") else { break };
        let headers = String::from_utf8_lossy(&rest[..h]).into_owned();
        let content = &rest[h + 4..];
        let end = find(content, b).map_or(content.len(), |j| j.saturating_sub(2));
        if let Some(name) = headers.split("name=\"").nth(1).and_then(|s| s.split('"').next()) {
            out.insert(name.to_owned(), content[..end].to_vec());
        }
        rest = &content[end..];
    }
    out
}

async fn respond(sock: &mut TcpStream, code: u16, body: &Value) {
    let text = body.to_string();
    let reason = match code {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        400 => "Bad Request",
        429 => "Too Many Requests",
        _ => "Bad Gateway",
    };
    let r = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = sock.write_all(r.as_bytes()).await;
    let _ = sock.shutdown().await;
}

fn err(code: u16, description: &str) -> Value {
    json!({"ok": false, "error_code": code, "description": description})
}

async fn serve(mut sock: TcpStream, st: Arc<Mutex<State>>, token: String) -> Option<()> {
    let (_, path, body, headers) = read_request(&mut sock).await?;
    let ctype = headers.get("CONTENT-TYPE").cloned().unwrap_or_default();
    // When Telegram got the request (what its rate limits count), not when a slow answer left.
    let arrived = Instant::now();
    let (tok, method) = path.trim_start_matches("/bot").split_once('/')?;
    // Telegram's method names are case-insensitive (teloxide sends "GetMe").
    let method = method.split('?').next()?.to_ascii_lowercase();
    let delay = {
        let mut s = st.lock().unwrap();
        *s.requests.entry(method.clone()).or_insert(0) += 1;
        s.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if tok != token {
        respond(&mut sock, 401, &err(401, "Unauthorized")).await;
        return Some(());
    }
    if st.lock().unwrap().down_until.is_some_and(|t| Instant::now() < t) {
        respond(&mut sock, 502, &err(502, "Bad Gateway")).await;
        return Some(());
    }
    let json_body: Value =
        if ctype.contains("json") { serde_json::from_slice(&body).unwrap_or(Value::Null) } else { Value::Null };
    let (conflict, webhook, get_me_down) = {
        let s = st.lock().unwrap();
        (s.conflict, s.webhook, s.get_me_down)
    };
    let (code, resp) = if method == "getme" && get_me_down {
        (502, err(502, "Bad Gateway"))
    } else if method == "getupdates" && webhook {
        (
            409,
            err(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            ),
        )
    } else if method == "getupdates" && conflict {
        let d = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
        (409, err(409, d))
    } else if method == "getupdates" {
        let offset = json_body["offset"].as_i64().unwrap_or(0);
        let timeout = json_body["timeout"].as_u64().unwrap_or(0).min(30);
        // As Telegram: updates of a kind the poll did not ask for are never delivered.
        let allowed: Option<Vec<String>> = json_body["allowed_updates"]
            .as_array()
            .map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect());
        let wanted = |u: &Value| {
            allowed.as_ref().is_none_or(|a| {
                u.as_object().is_some_and(|o| o.keys().any(|k| k != "update_id" && a.iter().any(|x| x == k)))
            })
        };
        let deadline = Instant::now() + Duration::from_secs(timeout);
        loop {
            let ready: Vec<Value> = {
                let mut s = st.lock().unwrap();
                s.updates.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset && wanted(u));
                s.updates.clone()
            };
            if !ready.is_empty() || Instant::now() >= deadline {
                break (200, json!({"ok": true, "result": ready}));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    } else {
        handle(&mut st.lock().unwrap(), &method, &json_body, &body, &ctype, arrived)
    };
    respond(&mut sock, code, &resp).await;
    Some(())
}

fn handle(s: &mut State, method: &str, json_body: &Value, body: &[u8], ctype: &str, arrived: Instant) -> (u16, Value) {
    let ok = |result: Value| (200, json!({"ok": true, "result": result}));
    let bot_user = json!({"id": BOT_ID, "is_bot": true, "first_name": "polycopy", "username": "polycopy_test_bot"});
    match method {
        "getme" => {
            let mut me = bot_user;
            for (k, v) in [
                ("can_join_groups", true),
                ("can_read_all_group_messages", false),
                ("supports_inline_queries", false),
                ("can_connect_to_business", false),
                ("has_main_web_app", false),
            ] {
                me[k] = json!(v);
            }
            ok(me)
        }
        "deletewebhook" | "answercallbackquery" | "setmycommands" => {
            if method == "setmycommands" {
                let cmds = json_body["commands"].as_array().cloned().unwrap_or_default();
                // What Telegram checks: 1-32 of a-z, 0-9, _; a description of 1-256 characters.
                let valid = |c: &Value| {
                    let name = c["command"].as_str().unwrap_or("");
                    let desc = c["description"].as_str().unwrap_or("");
                    (1..=32).contains(&name.len())
                        && name.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
                        && (1..=256).contains(&desc.chars().count())
                };
                if !cmds.iter().all(valid) {
                    return (400, err(400, "Bad Request: BOT_COMMAND_INVALID"));
                }
                s.commands = cmds;
            }
            if method == "deletewebhook" {
                s.webhook = false;
            }
            if method == "answercallbackquery" {
                s.callbacks_answered.push(json_body["callback_query_id"].as_str().unwrap_or("").to_owned());
            }
            ok(json!(true))
        }
        "editmessagereplymarkup" => {
            let chat = json_body["chat_id"].as_i64().unwrap_or(0);
            let id = json_body["message_id"].as_i64().unwrap_or(0);
            s.markups_removed.push((chat, id));
            let msg =
                json!({"message_id": id, "date": now_s(), "chat": chat_json(chat), "from": bot_user, "text": "x"});
            ok(msg)
        }
        "sendmessage" | "sendphoto" => {
            let target = json_body["chat_id"].as_i64().unwrap_or_else(|| {
                let parts = multipart(body, ctype);
                parts.get("chat_id").and_then(|v| String::from_utf8_lossy(v).trim().parse().ok()).unwrap_or(0)
            });
            if s.blocked.contains(&target) {
                *s.refused.entry(target).or_insert(0) += 1;
                return (403, err(403, "Forbidden: bot was blocked by the user"));
            }
            if s.muted.contains(&target) {
                *s.refused.entry(target).or_insert(0) += 1;
                return (400, err(400, "Bad Request: CHAT_WRITE_FORBIDDEN"));
            }
            if let Some(new) = s.migrated.get(&target) {
                *s.refused.entry(target).or_insert(0) += 1;
                let mut e = err(400, "Bad Request: group chat was upgraded to a supergroup chat");
                e["parameters"] = json!({"migrate_to_chat_id": new});
                return (400, e);
            }
            if method == "sendphoto" && s.no_photos.contains(&target) {
                *s.refused.entry(target).or_insert(0) += 1;
                return (400, err(400, "Bad Request: not enough rights to send photos to the chat"));
            }
            if let Some(mode) = json_body["parse_mode"].as_str() {
                s.parse_modes.push(mode.to_owned());
            }
            if s.fail_429 > 0 {
                s.fail_429 -= 1;
                let retry = s.retry_after;
                s.last_429 = Some(Instant::now());
                let mut e = err(429, &format!("Too Many Requests: retry after {retry}"));
                e["parameters"] = json!({"retry_after": retry});
                return (429, e);
            }
            let (text, mode) = if method == "sendmessage" {
                (
                    json_body["text"].as_str().unwrap_or("").to_owned(),
                    json_body["parse_mode"].as_str().map(str::to_owned),
                )
            } else {
                let parts = multipart(body, ctype);
                let field = |k: &str| parts.get(k).map(|v| String::from_utf8_lossy(v).into_owned());
                (field("caption").unwrap_or_default(), field("parse_mode"))
            };
            if let Some(why) = super::telegram_text::refusal(&text, mode.as_deref(), method == "sendphoto") {
                s.bad_requests.push(why.clone());
                return (400, err(400, &why));
            }
            s.next_message += 1;
            let id = s.next_message;
            let (chat, text, silent, buttons, photo) = if method == "sendmessage" {
                let buttons = json_body["reply_markup"]["inline_keyboard"]
                    .as_array()
                    .map(|rows| {
                        rows.iter()
                            .flat_map(|r| r.as_array().cloned().unwrap_or_default())
                            .filter_map(|b| b["callback_data"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    json_body["chat_id"].as_i64().unwrap_or(0),
                    json_body["text"].as_str().unwrap_or("").to_owned(),
                    json_body["disable_notification"].as_bool().unwrap_or(false),
                    buttons,
                    None,
                )
            } else {
                let parts = multipart(body, ctype);
                let field = |k: &str| parts.get(k).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                (
                    field("chat_id").trim().parse().unwrap_or(0),
                    field("caption"),
                    field("disable_notification") == "true",
                    Vec::new(),
                    // The file is either the field itself or a part it names with attach://<name>.
                    parts.get("photo").map(|v| {
                        let t = String::from_utf8_lossy(v);
                        t.strip_prefix("attach://")
                            .and_then(|name| parts.get(name.trim()).cloned())
                            .unwrap_or_else(|| v.clone())
                    }),
                )
            };
            s.sent.push(Sent { chat, text: text.clone(), silent, buttons, photo, at: arrived });
            let mut msg = json!({"message_id": id, "date": now_s(), "chat": chat_json(chat), "from": bot_user});
            if method == "sendmessage" {
                msg["text"] = json!(text);
            } else {
                msg["caption"] = json!(text);
                msg["photo"] =
                    json!([{"file_id": "f1", "file_unique_id": "u1", "width": 800, "height": 400, "file_size": 1000}]);
            }
            ok(msg)
        }
        _ => (404, err(404, "Not Found: method not found")),
    }
}
