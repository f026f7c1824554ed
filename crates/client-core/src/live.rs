//! The live layer on [`Client`]: presence, typing, read markers, receipts, mutes and
//! settings, by target (`@bob`, `ops`). The real-time side (frames as they arrive) is in
//! [`crate::connection`]; desktop notifications are in [`crate::notify`].

use std::time::Duration;

use natter_protocol::{
    ConversationInfo, ConversationState, MessageReceipts, Presence, PresenceState, Seq, Settings,
    SettingsUpdate, Target, validate,
};

use crate::client::Client;
use crate::error::Error;

impl Client {
    /// Presence of `users` (default: everyone you share a conversation with, and you).
    /// People you share no conversation with are left out by the server.
    pub async fn presence(&self, users: &[String]) -> Result<Vec<Presence>, Error> {
        let users = users
            .iter()
            .map(|u| validate::username(u.trim_start_matches('@')))
            .collect::<Result<Vec<_>, _>>()?;
        self.rest().presence(&users).await
    }

    /// Sets yourself `away` or back `online` (on every device).
    pub async fn set_presence(&self, state: PresenceState) -> Result<Presence, Error> {
        self.rest().set_presence(state).await
    }

    /// Your read marker, unread count, mute and online count in each conversation.
    pub async fn states(&self) -> Result<Vec<ConversationState>, Error> {
        self.rest().conversation_states().await
    }

    /// Marks the conversation read up to `seq` (default: its latest message).
    pub async fn mark_read(
        &self,
        target: &Target,
        seq: Option<Seq>,
    ) -> Result<(ConversationInfo, ConversationState), Error> {
        self.with_fresh_retry(
            target,
            |id| async move { self.rest().mark_read(id, seq).await },
        )
        .await
    }

    /// Announces that you are typing in the conversation (`active`), or that you stopped.
    pub async fn typing(&self, target: &Target, active: bool) -> Result<ConversationInfo, Error> {
        let (info, ()) = self
            .with_fresh_retry(
                target,
                |id| async move { self.rest().typing(id, active).await },
            )
            .await?;
        Ok(info)
    }

    /// Who has your message `seq` (default: your latest) in the conversation.
    pub async fn receipts(
        &self,
        target: &Target,
        seq: Option<Seq>,
    ) -> Result<(ConversationInfo, MessageReceipts), Error> {
        self.with_fresh_retry(
            target,
            |id| async move { self.rest().receipts(id, seq).await },
        )
        .await
    }

    /// Mutes the conversation on every device, for `duration` or until unmuted.
    pub async fn mute(
        &self,
        target: &Target,
        duration: Option<Duration>,
    ) -> Result<(ConversationInfo, ConversationState), Error> {
        let secs = duration.map(|d| d.as_secs().max(1));
        self.with_fresh_retry(target, |id| async move {
            self.rest().mute(id, Some(secs)).await
        })
        .await
    }

    pub async fn unmute(
        &self,
        target: &Target,
    ) -> Result<(ConversationInfo, ConversationState), Error> {
        self.with_fresh_retry(target, |id| async move { self.rest().mute(id, None).await })
            .await
    }

    pub async fn settings(&self) -> Result<Settings, Error> {
        self.rest().settings().await
    }

    pub async fn update_settings(&self, update: &SettingsUpdate) -> Result<Settings, Error> {
        self.rest().update_settings(update).await
    }
}
