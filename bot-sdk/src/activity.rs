//! Bot Framework Activities: the JSON a channel sends a bot, and the reply
//! it sends back (`botframework-schema`'s `Activity`, the fields a bot
//! needs; anything else is kept as is).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A user or bot account on a channel (`ChannelAccount`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelAccount {
    /// The channel's id for the account.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Other members, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A conversation (`ConversationAccount`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationAccount {
    /// The conversation's id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether it has more than two participants.
    #[serde(default, rename = "isGroup", skip_serializing_if = "Option::is_none")]
    pub is_group: Option<bool>,
    /// Other members, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An activity (`Activity`), camelCase on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// `message`, `conversationUpdate`, `typing`, `event`, `invoke`…
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The channel's id for this activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When it was sent (ISO-8601, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The channel (`msteams`, `webchat`, `directline`, `emulator`, `test`…).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub channel_id: String,
    /// Where replies go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_url: Option<String>,
    /// The sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ChannelAccount>,
    /// The conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationAccount>,
    /// The receiver (the bot, on an incoming activity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<ChannelAccount>,
    /// A message's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An event's or card submit's payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The activity this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    /// BCP-47 locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Every other member, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Activity {
    /// A message reply to this activity, addressed as Bot Framework's
    /// `TurnContext.sendActivity` addresses it
    /// (`applyConversationReference`): same channel, service URL and
    /// conversation; `from` is this activity's recipient (the bot),
    /// `recipient` its sender; `replyToId` is its id (except for a
    /// `conversationUpdate` on `directline` / `webchat`); the locale is
    /// kept; the reply has no id of its own.
    pub fn reply(&self, text: impl Into<String>) -> Activity {
        let reply_to_id = match (self.kind.as_str(), self.channel_id.as_str()) {
            ("conversationUpdate", "directline" | "webchat") => None,
            _ => self.id.clone(),
        };
        Activity {
            kind: "message".into(),
            id: None,
            timestamp: None,
            channel_id: self.channel_id.clone(),
            service_url: self.service_url.clone(),
            from: self.recipient.clone(),
            conversation: self.conversation.clone(),
            recipient: self.from.clone(),
            text: Some(text.into()),
            value: None,
            reply_to_id,
            locale: self.locale.clone(),
            extra: Map::from_iter([("inputHint".into(), Value::String("acceptingInput".into()))]),
        }
    }
}
