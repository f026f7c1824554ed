//! History paging.

use natter_e2e::Server;

#[test]
fn history_pages_backwards_in_ascending_order_without_gaps() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let mut ids = Vec::new();
    for i in 1..=120 {
        ids.push(alice.send("@bob", &format!("m{i}")));
    }

    // Default: the latest page.
    let latest = bob.history("@alice", &["--limit", "50"]);
    let seqs: Vec<i64> = latest.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (71..=120).collect::<Vec<_>>());

    // Page back from the oldest seq seen until nothing is left.
    let mut all = latest;
    let mut pages = 1;
    loop {
        let before = all[0].seq.to_string();
        let page = bob.history("@alice", &["--limit", "50", "--before", &before]);
        if page.is_empty() {
            break;
        }
        pages += 1;
        assert!(page.len() <= 50);
        assert!(
            page.windows(2).all(|w| w[0].seq < w[1].seq),
            "each page ascends"
        );
        assert!(page.last().unwrap().seq < all[0].seq);
        all.splice(0..0, page);
        if all[0].seq == 1 {
            break;
        }
    }
    assert_eq!(pages, 3, "120 messages in pages of 50");
    let got: Vec<(i64, i64, String)> = all.iter().map(|m| (m.seq, m.id, m.text.clone())).collect();
    let want: Vec<(i64, i64, String)> = (1..=120)
        .map(|i| (i, ids[i as usize - 1], format!("m{i}")))
        .collect();
    assert_eq!(
        got, want,
        "all 120, in order, no gaps, ids as `send` printed"
    );

    // The first page back from seq 21 is exactly 1..=20, and there is nothing before 1.
    let first = bob.history("@alice", &["--limit", "50", "--before", "21"]);
    assert_eq!(
        first.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    assert!(bob.history("@alice", &["--before", "1"]).is_empty());

    // alice sees the same conversation from her side.
    let mine = alice.history("@bob", &["--limit", "5"]);
    assert_eq!(
        mine.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["m116", "m117", "m118", "m119", "m120"]
    );
    assert!(
        mine.iter()
            .all(|m| m.conversation == "@bob" && m.sender == "alice")
    );
}
