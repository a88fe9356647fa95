//! A Bot Framework bot as a `wasi:http` handler for `wasm-state serve`.
//!
//! `POST /api/messages` takes an Activity as a channel sends it and answers
//! `200` with the reply Activity (type `message`, addressed back to the
//! sender in the same conversation):
//!
//! - `my name is NAME` stores NAME in the user's profile (UserState) and
//!   replies `Nice to meet you, NAME.`;
//! - anything else replies `NAME said "TEXT" (turn N)`: NAME from the
//!   profile (or `you`), N the conversation's turn count (ConversationState).
//!
//! A user's name follows them into every conversation on the channel; turn
//! counts are per conversation and exact under concurrent turns (optimistic
//! saves, retried on a conflict); a conversation idle for a day is
//! forgotten. A malformed activity is `400` saying what is wrong; an
//! activity that is not a message is acknowledged with `200` and no reply.

use std::time::Duration;

use wasm_state_bot::{
    Activity, BotError, BotState, BotStateSet, ConversationState, StateStorage, TurnContext,
    UserState,
};
use wasm_state_sdk::State;
use wstd::http::{Body, Request, Response, StatusCode};

/// Conversations idle this long are forgotten.
const CONVERSATION_IDLE: Duration = Duration::from_secs(24 * 3600);
/// Attempts at a turn that keeps conflicting with concurrent turns.
const ATTEMPTS: usize = 20;

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    if path != "/api/messages" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "the bot listens at POST /api/messages\n",
        ));
    }
    if method != "POST" {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST an Activity to /api/messages\n",
        ));
    }
    let body = match request.body_mut().contents().await {
        Ok(b) => b.to_vec(),
        Err(e) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}\n"),
            ));
        }
    };
    let activity: Activity = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body is not a Bot Framework Activity (JSON with type, channelId, conversation, from…): {e}\n"
                ),
            ));
        }
    };
    if activity.kind != "message" {
        return Ok(reply(StatusCode::OK, ""));
    }
    Ok(match turn(activity) {
        Ok(out) => json(StatusCode::OK, &out),
        Err(e @ BotError::MissingField(_)) => reply(
            StatusCode::BAD_REQUEST,
            format!("the activity is incomplete: {e}\n"),
        ),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    })
}

fn states() -> (BotState, BotState) {
    let user =
        UserState::new(StateStorage::new(State::instance()).with_prefix("bot/")).optimistic();
    let conversation = ConversationState::new(
        StateStorage::new(State::instance())
            .with_prefix("bot/")
            .with_ttl(CONVERSATION_IDLE),
    )
    .optimistic()
    .renew_every_turn();
    (user, conversation)
}

/// One turn, retried from the start while a concurrent turn of the same
/// conversation (or user) saved first.
fn turn(activity: Activity) -> Result<Activity, BotError> {
    let (user, conversation) = states();
    let name = user.create_property::<String>("name");
    let turns = conversation.create_property::<u64>("turns");
    let set = BotStateSet::new([user, conversation]);
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let turn = TurnContext::new(activity.clone());
        let text = turn.activity().text.clone().unwrap_or_default();
        let n = turns.get(&turn, Some(0))?.unwrap_or(0) + 1;
        turns.set(&turn, &n)?;
        let answer = match text.trim().strip_prefix("my name is ") {
            Some(new_name) if !new_name.trim().is_empty() => {
                let new_name = new_name.trim().to_string();
                name.set(&turn, &new_name)?;
                format!("Nice to meet you, {new_name}.")
            }
            _ => {
                let who = name.get(&turn, None)?.unwrap_or_else(|| "you".into());
                format!("{who} said \"{text}\" (turn {n})")
            }
        };
        match set.save_all_changes(&turn, false) {
            Ok(()) => return Ok(turn.activity().reply(answer)),
            Err(e @ BotError::EtagConflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(BotError::NoKey("the turn kept conflicting".into())))
}

fn reply(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.into()));
    *resp.status_mut() = status;
    resp
}

fn json(status: StatusCode, activity: &Activity) -> Response<Body> {
    let mut resp = reply(status, serde_json::to_string(activity).unwrap_or_default());
    resp.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("static header"),
    );
    resp
}
