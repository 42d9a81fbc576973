import multiprocessing

from workshop_hub.access.passwords import PasswordStore, hash_password, password_matches


def test_hashes_verify_only_their_password():
    stored = hash_password("ada-own-pass")
    assert stored.startswith(b"$2b$")
    assert password_matches("ada-own-pass", stored)
    assert not password_matches("ada-own-pasS", stored)
    assert not password_matches("x" * 100, stored)


def test_claim_is_once_and_set_and_delete_work(tmp_path):
    store = PasswordStore(tmp_path / "passwords")
    assert store.claim("ada", b"first")
    assert not store.claim("ada", b"second")
    assert store.get("ada") == b"first"
    store.set("ada", b"reset")
    assert store.get("ada") == b"reset"
    assert store.delete("ada") and not store.delete("ada")
    assert store.get("ada") is None


def _claim_many(path, prefix):
    store = PasswordStore(path)
    for index in range(30):
        store.claim(f"{prefix}{index}", b"hash")


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "passwords"
    workers = [multiprocessing.Process(target=_claim_many, args=(path, prefix)) for prefix in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    store = PasswordStore(path)
    assert all(store.get(f"{prefix}{index}") for prefix in "ab" for index in range(30))


def test_the_store_replaces_a_card_only_once(tmp_path):
    store = PasswordStore(tmp_path / "passwords")
    store.set("ada", b"one-time:x")
    assert store.replace("ada", b"one-time:x", b"mine") is True
    assert store.replace("ada", b"one-time:x", b"theirs") is False
    assert store.get("ada") == b"mine"
