//! Every relay rule, without a network.

use super::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn join(groups: &[&str]) -> Join {
    Join {
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..Join::default()
    }
}

fn session(id: u8, groups: &[&str]) -> Join {
    Join {
        session: Some(Bytes::from(vec![id; 16])),
        ..join(groups)
    }
}

fn dest(g: &str, n: i64) -> Vec<(String, i64)> {
    vec![(g.to_string(), n)]
}

fn relay() -> RelayCore {
    RelayCore::new(GroupPolicy::default(), b("epoch-1"))
}

/// Drains the outputs, keeping those for `conn`.
fn take(r: &mut RelayCore) -> Vec<(ConnId, Output)> {
    std::iter::from_fn(|| r.poll_output()).collect()
}

fn payloads_for(out: &[(ConnId, Output)], conn: ConnId) -> Vec<Bytes> {
    out.iter()
        .filter(|(c, _)| *c == conn)
        .filter_map(|(_, o)| match o {
            Output::Broadcast { payload, .. } | Output::Item { payload, .. } => {
                Some(payload.clone())
            }
            _ => None,
        })
        .collect()
}

fn item_ids(out: &[(ConnId, Output)], conn: ConnId) -> Vec<u64> {
    out.iter()
        .filter(|(c, _)| *c == conn)
        .filter_map(|(_, o)| match o {
            Output::Item { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn late_joiner_gets_only_the_last_broadcast_once_and_not_again_on_rejoin() {
    let mut r = relay();
    r.join(1, session(1, &["g"]));
    r.publish(1, 1, &dest("g", -1), b("b1"));
    r.publish(1, 2, &dest("g", -1), b("b2"));
    let out = take(&mut r);
    // The sender is a member, so it gets its own broadcasts (tlspyo does too).
    assert_eq!(payloads_for(&out, 1), vec![b("b1"), b("b2")]);
    r.join(2, session(2, &["g"]));
    let out = take(&mut r);
    assert_eq!(payloads_for(&out, 2), vec![b("b2")]);
    // Reconnect: the endpoint says it saw bseq 2 under this epoch: nothing again.
    r.leave(2);
    let mut again = session(2, &["g"]);
    again.epoch = Some(b("epoch-1"));
    again.seen = vec![("g".into(), 2)];
    r.join(3, again.clone());
    assert!(payloads_for(&take(&mut r), 3).is_empty());
    // A newer broadcast while it was away is delivered once on rejoin.
    r.leave(3);
    r.publish(1, 3, &dest("g", -1), b("b3"));
    take(&mut r);
    r.join(4, again.clone());
    assert_eq!(payloads_for(&take(&mut r), 4), vec![b("b3")]);
    // A relay restart (new epoch) cannot know: it sends its own retained one.
    let mut fresh = RelayCore::new(GroupPolicy::default(), b("epoch-2"));
    fresh.join(9, session(1, &["g"]));
    fresh.publish(9, 1, &dest("g", -1), b("n1"));
    take(&mut fresh);
    fresh.join(10, again);
    assert_eq!(payloads_for(&take(&mut fresh), 10), vec![b("n1")]);
}

#[test]
fn produced_objects_wait_for_credit_then_go_round_robin() {
    let mut r = relay();
    r.join(1, session(1, &["w"]));
    r.join(2, session(2, &["w"]));
    r.join(3, session(3, &["p"]));
    for i in 0..4 {
        r.publish(3, i + 1, &dest("w", 1), b(&format!("o{i}")));
    }
    take(&mut r);
    assert_eq!(r.queued("w"), 4, "no credit yet: everything waits");
    r.notify(1, &dest("w", 2));
    r.notify(2, &dest("w", 5));
    let out = take(&mut r);
    let one = payloads_for(&out, 1);
    let two = payloads_for(&out, 2);
    assert_eq!(one.len() + two.len(), 4);
    assert_eq!(one.len(), 2, "consumer 1 had credit 2");
    // Credit persists: a later produce goes to the consumer with credit left.
    r.publish(3, 5, &dest("w", 1), b("o4"));
    let out = take(&mut r);
    assert_eq!(payloads_for(&out, 2), vec![b("o4")]);
    assert!(payloads_for(&out, 1).is_empty());
}

#[test]
fn notify_negative_takes_everything_queued_now_without_credit() {
    let mut r = relay();
    r.join(1, session(1, &["w"]));
    for i in 0..3 {
        r.publish(1, i + 1, &dest("w", 2), b("x"));
    }
    take(&mut r);
    r.notify(1, &dest("w", -1));
    let out = take(&mut r);
    assert_eq!(payloads_for(&out, 1).len(), 6);
    assert!(out
        .iter()
        .all(|(_, o)| !matches!(o, Output::Item { credited: true, .. })));
    // No credit was added: the next one waits.
    r.publish(1, 4, &dest("w", 1), b("y"));
    assert!(payloads_for(&take(&mut r), 1).is_empty());
    assert_eq!(r.queued("w"), 1);
    // A group it is not a member of is ignored.
    r.notify(1, &dest("other", 5));
    assert!(payloads_for(&take(&mut r), 1).is_empty());
}

#[test]
fn unacknowledged_items_are_requeued_when_the_consumer_leaves() {
    let mut r = relay();
    r.join(1, session(1, &["w"]));
    r.join(2, session(2, &["w"]));
    for i in 0..3 {
        r.publish(2, i + 1, &dest("w", 1), b(&format!("o{i}")));
    }
    r.notify(1, &dest("w", 3));
    let out = take(&mut r);
    assert_eq!(item_ids(&out, 1), vec![1, 2, 3]);
    r.ack(1, 1); // o0 arrived; o1 and o2 did not
    r.leave(1);
    assert_eq!(r.queued("w"), 2);
    assert_eq!(r.stats().requeued, 2);
    r.notify(2, &dest("w", 5));
    let out = take(&mut r);
    assert_eq!(payloads_for(&out, 2), vec![b("o1"), b("o2")], "same order");
}

#[test]
fn credit_comes_back_with_the_session_on_rejoin() {
    let mut r = relay();
    r.join(1, session(1, &["w"]));
    r.notify(1, &dest("w", 3));
    r.leave(1);
    let mut back = session(1, &["w"]);
    back.credit = vec![("w".into(), 3)];
    r.join(2, back);
    r.join(3, session(3, &["p"]));
    r.publish(3, 1, &dest("w", 1), b("a"));
    assert_eq!(payloads_for(&take(&mut r), 2), vec![b("a")]);
}

#[test]
fn publish_repeats_after_a_reconnect_are_taken_once() {
    let mut r = relay();
    r.join(1, session(1, &["w"]));
    r.publish(1, 1, &dest("w", 1), b("a"));
    r.publish(1, 2, &dest("w", 1), b("b"));
    r.leave(1);
    r.join(2, session(1, &["w"]));
    let out = take(&mut r);
    assert!(out.contains(&(
        2,
        Output::Welcome {
            epoch: b("epoch-1"),
            accepted: 2
        }
    )));
    // The endpoint did not see DONE 2, so it resends 2, then sends 3.
    r.publish(2, 2, &dest("w", 1), b("b"));
    r.publish(2, 3, &dest("w", 1), b("c"));
    r.flush_done();
    let out = take(&mut r);
    assert_eq!(r.queued("w"), 3);
    assert_eq!(r.stats().duplicates, 1);
    assert!(out.contains(&(2, Output::Done(3))));
}

#[test]
fn a_new_connection_of_the_same_session_replaces_the_stale_one() {
    let mut r = RelayCore::new(
        GroupPolicy::Any(GroupLimits {
            max_count: Some(1),
            max_consumables: None,
        }),
        b("e"),
    );
    r.join(1, session(1, &["g"]));
    r.notify(1, &dest("g", 1));
    r.publish(1, 1, &dest("g", 1), b("x"));
    take(&mut r);
    // The old connection is not yet known to be dead; max_count 1 must not
    // refuse the same endpoint, and its unacked item is requeued.
    r.join(2, session(1, &["g"]));
    let out = take(&mut r);
    assert!(matches!(out[0], (2, Output::Welcome { .. })), "{out:?}");
    assert!(!r.is_joined(1));
    assert_eq!(r.queued("g"), 1);
}

#[test]
fn max_count_rejects_with_a_reason_and_frees_on_leave() {
    let mut limits = HashMap::new();
    limits.insert(
        "g".to_string(),
        GroupLimits {
            max_count: Some(2),
            max_consumables: Some(2),
        },
    );
    let mut r = RelayCore::new(GroupPolicy::Only(limits), b("e"));
    r.join(1, join(&["g"]));
    r.join(2, join(&["g"]));
    r.join(3, join(&["g"]));
    let out = take(&mut r);
    let reject = out.iter().find(|(c, _)| *c == 3).unwrap();
    match &reject.1 {
        Output::Reject(reason) => assert!(reason.contains("max_count 2"), "{reason}"),
        o => panic!("expected a reject, got {o:?}"),
    }
    assert!(!r.is_joined(3));
    r.join(4, join(&["other"]));
    match take(&mut r).pop().unwrap().1 {
        Output::Reject(reason) => assert!(reason.contains("not accepted"), "{reason}"),
        o => panic!("expected a reject, got {o:?}"),
    }
    r.leave(1);
    r.join(5, join(&["g"]));
    assert!(r.is_joined(5));
}

#[test]
fn max_consumables_refuses_the_whole_publish_with_a_reason() {
    let mut r = RelayCore::new(
        GroupPolicy::Any(GroupLimits {
            max_count: None,
            max_consumables: Some(3),
        }),
        b("e"),
    );
    r.join(1, session(1, &["p"]));
    r.publish(1, 1, &dest("w", 2), b("a"));
    r.publish(1, 2, &[("w".into(), 1), ("v".into(), 1)], b("b"));
    // 3 queued in w: one more does not fit, and v gets nothing either.
    r.publish(1, 3, &[("v".into(), 1), ("w".into(), 1)], b("c"));
    r.flush_done();
    let out = take(&mut r);
    assert_eq!(r.queued("w"), 3);
    assert_eq!(r.queued("v"), 1);
    let fail = out
        .iter()
        .find_map(|(_, o)| match o {
            Output::Fail { seq, reason } => Some((*seq, reason.clone())),
            _ => None,
        })
        .expect("a FAIL");
    assert_eq!(fail.0, 3);
    assert!(fail.1.contains("max_consumables 3"), "{}", fail.1);
    assert!(out.contains(&(1, Output::Done(2))));
}

#[test]
fn the_window_bounds_unacknowledged_items_per_consumer() {
    let mut r = relay();
    r.join(1, session(1, &["w"]));
    r.notify(1, &dest("w", i64::MAX / 2));
    for i in 0..(WINDOW_ITEMS as u64 + 10) {
        r.publish(1, i + 1, &dest("w", 1), b("x"));
    }
    let out = take(&mut r);
    assert_eq!(item_ids(&out, 1).len(), WINDOW_ITEMS);
    assert_eq!(r.queued("w"), 10);
    r.ack(1, 5);
    assert_eq!(item_ids(&take(&mut r), 1).len(), 5);
}

#[test]
fn unknown_connections_are_told_to_introduce_themselves() {
    let mut r = relay();
    r.publish(7, 1, &dest("g", 1), b("x"));
    r.notify(7, &dest("g", 1));
    r.ack(7, 1);
    let out = take(&mut r);
    assert_eq!(out, vec![(7, Output::Reset), (7, Output::Reset)]);
    assert_eq!(r.queued("g"), 0);
}

fn packed(objs: &[&str]) -> Packed {
    let mut p = crate::protocol::PackedBuilder::new();
    for o in objs {
        p.push(o.as_bytes());
    }
    p.finish().unwrap()
}

/// Every broadcast for `conn`, batched or not, as (bseq, payload).
fn broadcasts_for(out: &[(ConnId, Output)], conn: ConnId) -> Vec<(u64, Bytes)> {
    let mut v = Vec::new();
    for (c, o) in out {
        if *c != conn {
            continue;
        }
        match o {
            Output::Broadcast { bseq, payload, .. } => v.push((*bseq, payload.clone())),
            Output::Broadcasts {
                first_bseq,
                objects,
                ..
            } => v.extend((*first_bseq..).zip(objects.iter())),
            _ => {}
        }
    }
    v
}

#[test]
fn a_batch_goes_whole_to_batch_readers_one_by_one_to_others_and_its_last_is_retained() {
    let mut r = relay();
    r.join(
        1,
        Join {
            batch: true,
            ..session(1, &["g"])
        },
    );
    r.join(2, session(2, &["g"]));
    take(&mut r);
    r.publish(1, 1, &dest("g", -1), b("solo"));
    r.publish_batch(1, 2, &dest("g", -1), packed(&["x", "y", "z"]));
    r.flush_done();
    let out = take(&mut r);
    let want = vec![(1, b("solo")), (2, b("x")), (3, b("y")), (4, b("z"))];
    assert_eq!(broadcasts_for(&out, 1), want);
    assert_eq!(broadcasts_for(&out, 2), want);
    // The batch reader got one output for the batch (and DONE); the other
    // got one per object.
    let count = |conn| out.iter().filter(|(c, _)| *c == conn).count();
    assert_eq!(count(1), 3);
    assert_eq!(count(2), 4);
    assert!(out.contains(&(1, Output::Done(4))));
    assert_eq!(r.stats().published, 4);
    r.join(3, session(3, &["g"]));
    assert_eq!(broadcasts_for(&take(&mut r), 3), vec![(4, b("z"))]);
}

#[test]
fn a_resent_batch_is_taken_once_even_when_partly_taken_before() {
    let mut r = relay();
    r.join(1, session(1, &["g"]));
    r.join(2, session(2, &["g"]));
    r.publish(1, 1, &dest("g", -1), b("a"));
    r.publish(1, 2, &dest("g", -1), b("b"));
    take(&mut r);
    // A reconnect resends seq 1..=4 as one batch: only 3 and 4 are new.
    r.publish_batch(1, 1, &dest("g", -1), packed(&["a", "b", "c", "d"]));
    let got = broadcasts_for(&take(&mut r), 2);
    assert_eq!(got, vec![(3, b("c")), (4, b("d"))]);
    assert_eq!(r.stats().duplicates, 2);
    // All of it again: nothing new, but confirmed.
    r.publish_batch(1, 1, &dest("g", -1), packed(&["a", "b", "c", "d"]));
    r.flush_done();
    let out = take(&mut r);
    assert!(broadcasts_for(&out, 2).is_empty());
    assert!(out.contains(&(1, Output::Done(4))));
}

#[test]
fn a_batch_of_work_items_is_queued_item_by_item_and_a_refused_batch_fails_whole() {
    let mut r = RelayCore::new(
        GroupPolicy::Only(HashMap::from([(
            "w".to_string(),
            GroupLimits {
                max_count: None,
                max_consumables: Some(2),
            },
        )])),
        b("e"),
    );
    r.join(1, session(1, &["w"]));
    take(&mut r);
    r.publish_batch(1, 1, &dest("w", 1), packed(&["i1", "i2", "i3"]));
    let out = take(&mut r);
    assert_eq!(r.queued("w"), 2);
    assert!(out.contains(&(
        1,
        Output::Fail {
            seq: 3,
            reason: "group \"w\" queue is full (2 of max_consumables 2 objects)".into()
        }
    )));
    // A broadcast batch to a group this relay does not accept: one FAIL.
    r.publish_batch(1, 4, &dest("nope", -1), packed(&["a", "b"]));
    let fails: Vec<_> = take(&mut r)
        .into_iter()
        .filter(|(_, o)| matches!(o, Output::Fail { .. }))
        .collect();
    assert_eq!(fails.len(), 1);
    assert!(matches!(&fails[0].1, Output::Fail { seq: 5, .. }));
    assert_eq!(r.stats().refused, 3);
}
