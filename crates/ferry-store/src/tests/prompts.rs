//! Prompts and their ids.

use super::*;

#[test]
fn prompts_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = store.next_prompt_id().unwrap();
    let b = store.next_prompt_id().unwrap();
    assert!(b > a);
    let pair = PromptRecord {
        id: b,
        device: PEER,
        created_ms: 1,
        kind: PromptKind::Pair { name: "n".into(), owner: "o".into(), code: "123".into() },
    };
    let offer = PromptRecord {
        id: a,
        device: PEER2,
        created_ms: 2,
        kind: PromptKind::ShareOffer { share: S1, label: "docs".into() },
    };
    store.put_prompt(&pair).unwrap();
    store.put_prompt(&offer).unwrap();
    assert_eq!(store.prompts().unwrap(), vec![offer.clone(), pair.clone()]);
    assert_eq!(store.prompt(b).unwrap(), Some(pair));
    store.remove_prompt(b).unwrap();
    assert_eq!(store.prompt(b).unwrap(), None);
    assert_eq!(store.prompts().unwrap(), vec![offer]);
}
