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
        event: None,
        attachments: Vec::new(),
    }
}

fn attachment() -> Attachment {
    Attachment {
        id: "0193f3a0-0000-7000-8000-000000000001".into(),
        name: "screenshot.png".into(),
        size: 2_100_000,
        mime: "image/png".into(),
        hash: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262".into(),
        width: Some(1920),
        height: Some(1080),
        thumbnail: true,
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
            text: "hi".into(),
            attachments: Vec::new(),
        }
    );
    insta::assert_json_snapshot!(
        "client_send_with_file",
        ClientFrame::Send {
            conversation_id: 7,
            client_id: "c-2".into(),
            text: String::new(),
            attachments: vec![attachment().id],
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
fn timeline_event_messages() {
    let mut m = message();
    m.text = "alice added carol".into();
    m.client_id = "event-7-3".into();
    m.event = Some(TimelineEvent::MemberAdded {
        by: "alice".into(),
        user: "carol".into(),
    });
    insta::assert_json_snapshot!("server_event_message", ServerFrame::Message { message: m });
}

#[test]
fn rest_bodies() {
    insta::assert_json_snapshot!(
        "rest_register",
        RegisterRequest {
            username: "alice".into(),
            password: "correct horse".into(),
            invite: None,
        }
    );
    insta::assert_json_snapshot!(
        "rest_register_invite",
        RegisterRequest {
            username: "bob".into(),
            password: "correct horse".into(),
            invite: Some("inv-code".into()),
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
            topic: "deploys and incidents".into(),
        }
    );
    insta::assert_json_snapshot!(
        "rest_timeline_event",
        TimelineEvent::MemberAdded {
            by: "alice".into(),
            user: "carol".into()
        }
    );
    insta::assert_json_snapshot!("rest_role", RoleRequest { role: Role::Admin });
    insta::assert_json_snapshot!(
        "rest_group_settings",
        GroupSettingsRequest {
            name: Some("ops2".into()),
            topic: Some("deploys".into())
        }
    );
    insta::assert_json_snapshot!(
        "rest_transfer",
        TransferRequest {
            username: "bob".into()
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
            text: "hi".into(),
            attachments: Vec::new(),
        }
    );
    insta::assert_json_snapshot!(
        "rest_message_with_files",
        Message {
            attachments: vec![
                attachment(),
                Attachment {
                    id: "0193f3a0-0000-7000-8000-000000000002".into(),
                    name: "build.log".into(),
                    size: 512,
                    mime: "text/plain".into(),
                    hash: "0".repeat(64),
                    width: None,
                    height: None,
                    thumbnail: false,
                },
            ],
            ..message()
        }
    );
    insta::assert_json_snapshot!(
        "rest_upload_query",
        UploadQuery {
            name: "build.log".into()
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
            version: "0.1.0".into(),
            max_upload_bytes: Some(104_857_600),
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

/// `encode` writes into a buffer of its own sizing: byte for byte what serde_json writes.
#[test]
fn encoded_acks_are_the_derived_json() {
    let mut with_files = message();
    with_files.attachments = vec![attachment()];
    for (message, duplicate) in [(message(), false), (with_files, true)] {
        let frame = ServerFrame::Ack {
            client_id: "c-\"1\"".into(),
            ack: SendAck { message, duplicate },
        };
        assert_eq!(frame.encode(), serde_json::to_string(&frame).unwrap());
        let back: ServerFrame = serde_json::from_str(&frame.encode()).unwrap();
        assert_eq!(back, frame);
    }
    let pong = ServerFrame::Pong { nonce: 5 };
    assert_eq!(pong.encode(), serde_json::to_string(&pong).unwrap());
}

/// The frames made from a message serialized once are byte for byte the derived ones.
#[test]
fn frames_from_a_message_serialized_once_are_the_derived_json() {
    let mut with_files = message();
    with_files.attachments = vec![attachment()];
    with_files.text = "émoji 🎉, tab\t, nul \u{0}, bell \u{7}".into();
    let mut event = message();
    event.event = Some(TimelineEvent::Renamed {
        by: "alice".into(),
        from: "old".into(),
        to: "new \"one\"".into(),
    });
    for message in [message(), with_files, event] {
        let json = message_json(&message);
        let frame = ServerFrame::Message {
            message: message.clone(),
        };
        assert_eq!(message_frame_from_json(&json).concat(), frame.encode());
        for (client_id, duplicate) in [("c-1", false), ("c-\"2\"\\\n", true)] {
            let ack = ServerFrame::Ack {
                client_id: client_id.into(),
                ack: SendAck {
                    message: message.clone(),
                    duplicate,
                },
            };
            assert_eq!(
                ack_frame_from_json(client_id, &json, duplicate),
                serde_json::to_string(&ack).unwrap()
            );
        }
    }
}

/// `decode` reads `send` frames on a direct path (for speed): it must accept, reject and
/// read exactly as the derived decoder does.
#[test]
fn decoding_sends_directly_agrees_with_the_derived_decoder() {
    let frames = [
        r#"{"type":"send","conversation_id":7,"client_id":"c-1","text":"hi"}"#,
        r#"{"conversation_id":7,"client_id":"c-1","text":"hi","type":"send"}"#,
        r#"{"type":"send","conversation_id":7,"client_id":"c-1"}"#,
        r#"{"type":"send","conversation_id":7,"client_id":"c-1","attachments":["a","b"]}"#,
        r#"{"type":"send","conversation_id":7,"client_id":"c-1","text":"x","extra":[1,{"y":null}],"seq":"z"}"#,
        r#"{"type":"send","conversation_id":7,"client_id":"c-1","text":null}"#,
        r#"{"type":"send","conversation_id":7,"text":"no client id"}"#,
        r#"{"type":"send","conversation_id":-1,"client_id":"c-1","text":"hi"}"#,
        r#"{"type":"send","conversation_id":7,"client_id":"c-1","text":"a","text":"b"}"#,
        r#"{"type":"Send","conversation_id":7,"client_id":"c-1","text":"hi"}"#,
        r#"{"type":"send","type":"send","conversation_id":7,"client_id":"c-1"}"#,
        r#"{"type":"read","conversation_id":7,"seq":3,"client_id":"c-1"}"#,
        r#"{"type":"send","conversation_id":7,"client_id":"c-1","text":"hi"} trailing"#,
        r#"["send",7,"c-1","hi"]"#,
    ];
    for text in frames {
        let derived = serde_json::from_str::<ClientFrame>(text).map_err(|e| e.to_string());
        let direct =
            ClientFrame::decode(text).map_err(|e| e.replace("could not decode frame: ", ""));
        assert_eq!(direct, derived, "{text}");
    }
}

#[test]
fn live_client_frames() {
    insta::assert_json_snapshot!(
        "client_typing",
        ClientFrame::Typing {
            conversation_id: 7,
            active: true
        }
    );
    insta::assert_json_snapshot!(
        "client_delivered",
        ClientFrame::Delivered {
            conversation_id: 7,
            seq: 3
        }
    );
    insta::assert_json_snapshot!(
        "client_read",
        ClientFrame::Read {
            conversation_id: 7,
            seq: 3
        }
    );
    insta::assert_json_snapshot!(
        "client_set_presence",
        ClientFrame::SetPresence {
            state: PresenceState::Away
        }
    );
    // `active` defaults to true.
    assert_eq!(
        ClientFrame::decode(r#"{"type":"typing","conversation_id":7}"#).unwrap(),
        ClientFrame::Typing {
            conversation_id: 7,
            active: true
        }
    );
}

fn state() -> ConversationState {
    ConversationState {
        conversation_id: 7,
        last_seq: 5,
        read_seq: 3,
        unread: 2,
        muted: true,
        muted_until: Some(datetime!(2026-11-28 13:00:00 UTC)),
        online: 1,
    }
}

#[test]
fn live_server_frames() {
    insta::assert_json_snapshot!(
        "server_presence",
        ServerFrame::Presence {
            presence: vec![
                Presence {
                    user: "alice".into(),
                    state: PresenceState::Online,
                    last_seen: None
                },
                Presence {
                    user: "bob".into(),
                    state: PresenceState::Offline,
                    last_seen: Some(datetime!(2026-11-28 12:00:00 UTC))
                },
            ]
        }
    );
    insta::assert_json_snapshot!(
        "server_typing",
        ServerFrame::Typing {
            conversation_id: 7,
            user: "bob".into(),
            active: false
        }
    );
    insta::assert_json_snapshot!(
        "server_receipt",
        ServerFrame::Receipt {
            receipt: Receipt {
                conversation_id: 7,
                kind: ReceiptKind::Read,
                user: "bob".into(),
                seq: 4,
                message_seq: 3,
                count: 1,
                of: 2
            }
        }
    );
    insta::assert_json_snapshot!(
        "server_conversation_state",
        ServerFrame::ConversationState { state: state() }
    );
    insta::assert_json_snapshot!(
        "server_settings",
        ServerFrame::Settings {
            settings: Settings {
                read_receipts: false,
                do_not_disturb: true
            }
        }
    );
}

#[test]
fn live_rest_bodies() {
    insta::assert_json_snapshot!("rest_conversation_state", state());
    insta::assert_json_snapshot!(
        "rest_message_receipts",
        MessageReceipts {
            conversation_id: 7,
            seq: 3,
            delivered_to: vec!["bob".into(), "carol".into()],
            read_by: vec!["bob".into()],
            of: 2
        }
    );
    insta::assert_json_snapshot!(
        "rest_set_presence",
        SetPresenceRequest {
            state: PresenceState::Online
        }
    );
    insta::assert_json_snapshot!("rest_read", ReadRequest { seq: Some(3) });
    insta::assert_json_snapshot!(
        "rest_mute",
        MuteRequest {
            for_secs: Some(3600)
        }
    );
    insta::assert_json_snapshot!(
        "rest_settings_update",
        SettingsUpdate {
            read_receipts: Some(false),
            do_not_disturb: None
        }
    );
    insta::assert_json_snapshot!(
        "rest_presence_query",
        PresenceQuery {
            users: Some("alice,bob".into())
        }
    );
    insta::assert_json_snapshot!("rest_receipts_query", ReceiptsQuery { seq: Some(3) });
}
