//! Serialization snapshots of every wire type: a wire change is always a visible diff.

use natter_protocol::*;
use time::macros::datetime;

fn message() -> Message {
    Message {
        id: 42,
        conversation_id: 7,
        seq: 3,
        sender: "alice".into(),
        text: "hi bob\n\"quoted\"".into(),
        sent_at: datetime!(2026-11-28 12:00:00 UTC),
        client_id: "c-1".into(),
    }
}

fn user() -> UserInfo {
    UserInfo {
        id: 1,
        username: "alice".into(),
        is_admin: true,
    }
}

fn conversation() -> ConversationInfo {
    ConversationInfo {
        id: 7,
        kind: ConversationKind::Direct,
        name: None,
        peer: Some("bob".into()),
        last_seq: 3,
        last_activity: datetime!(2026-11-28 12:00:00 UTC),
        member_count: 2,
    }
}

#[test]
fn client_frames() {
    insta::assert_json_snapshot!(
        "client_send",
        ClientFrame::Send {
            conversation_id: 7,
            client_id: "c-1".into(),
            text: "hi".into()
        }
    );
    insta::assert_json_snapshot!("client_ping", ClientFrame::Ping { nonce: 9 });
}

#[test]
fn server_frames() {
    insta::assert_json_snapshot!(
        "server_hello",
        ServerFrame::Hello {
            user: user(),
            cursor: 41,
            heartbeat_secs: 20
        }
    );
    insta::assert_json_snapshot!(
        "server_message",
        ServerFrame::Message { message: message() }
    );
    insta::assert_json_snapshot!("server_synced", ServerFrame::Synced { cursor: 42 });
    insta::assert_json_snapshot!(
        "server_ack",
        ServerFrame::Ack {
            client_id: "c-1".into(),
            ack: SendAck {
                message: message(),
                duplicate: false
            }
        }
    );
    insta::assert_json_snapshot!(
        "server_conversation",
        ServerFrame::Conversation {
            conversation: conversation()
        }
    );
    insta::assert_json_snapshot!(
        "server_removed",
        ServerFrame::Removed { conversation_id: 7 }
    );
    insta::assert_json_snapshot!(
        "server_error",
        ServerFrame::Error {
            code: ErrorCode::MessageTooLarge,
            message: "message is 20480 bytes; the limit is 16384".into(),
            client_id: Some("c-1".into()),
        }
    );
    insta::assert_json_snapshot!("server_pong", ServerFrame::Pong { nonce: 9 });
}

#[test]
fn rest_bodies() {
    insta::assert_json_snapshot!(
        "rest_register",
        RegisterRequest {
            username: "alice".into(),
            password: "correct horse".into()
        }
    );
    insta::assert_json_snapshot!(
        "rest_login",
        LoginRequest {
            username: "alice".into(),
            password: "pw".into(),
            device: Some("cli".into())
        }
    );
    insta::assert_json_snapshot!(
        "rest_auth",
        AuthResponse {
            token: "t0k".into(),
            user: user()
        }
    );
    insta::assert_json_snapshot!("rest_conversation", conversation());
    insta::assert_json_snapshot!(
        "rest_group",
        GroupInfo {
            id: 8,
            name: "ops".into(),
            created_at: datetime!(2026-11-28 12:00:00 UTC),
            members: vec![
                MemberInfo {
                    username: "alice".into(),
                    role: Role::Owner
                },
                MemberInfo {
                    username: "bob".into(),
                    role: Role::Member
                },
            ],
        }
    );
    insta::assert_json_snapshot!(
        "rest_create_group",
        CreateGroupRequest {
            name: "ops".into(),
            members: vec!["bob".into()]
        }
    );
    insta::assert_json_snapshot!(
        "rest_members",
        MembersRequest {
            usernames: vec!["carol".into()]
        }
    );
    insta::assert_json_snapshot!(
        "rest_open_direct",
        OpenDirectRequest {
            username: "bob".into()
        }
    );
    insta::assert_json_snapshot!(
        "rest_send",
        SendRequest {
            client_id: "c-1".into(),
            text: "hi".into()
        }
    );
    insta::assert_json_snapshot!(
        "rest_ack",
        SendAck {
            message: message(),
            duplicate: true
        }
    );
    insta::assert_json_snapshot!(
        "rest_history_query",
        HistoryQuery {
            before: Some(10),
            after: None,
            limit: Some(20)
        }
    );
    insta::assert_json_snapshot!(
        "rest_history_page",
        HistoryPage {
            messages: vec![message()],
            has_more: false
        }
    );
    insta::assert_json_snapshot!(
        "rest_sync_query",
        SyncQuery {
            after: 5,
            limit: Some(100)
        }
    );
    insta::assert_json_snapshot!(
        "rest_sync_page",
        SyncPage {
            messages: vec![message()],
            has_more: true,
            cursor: 42
        }
    );
    insta::assert_json_snapshot!(
        "rest_error",
        ErrorBody {
            code: ErrorCode::NotMember,
            message: "you are not a member of group ops".into()
        }
    );
    insta::assert_json_snapshot!(
        "rest_health",
        Health {
            status: "ok".into(),
            version: "0.1.0".into()
        }
    );
}

#[test]
fn decode_rejects_garbage() {
    assert!(ClientFrame::decode("{").is_err());
    assert!(ClientFrame::decode(r#"{"type":"nope"}"#).is_err());
    assert!(ClientFrame::decode(r#"{"type":"send","conversation_id":"x"}"#).is_err());
    assert_eq!(
        ClientFrame::decode(r#"{"type":"ping"}"#).unwrap(),
        ClientFrame::Ping { nonce: 0 }
    );
}
