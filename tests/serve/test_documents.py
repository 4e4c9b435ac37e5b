"""Uploading, listing and deleting documents; upload names can never escape DIR/uploads/."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serve.limits import Limits
from serve.uploads import safe_filename
from tests.serve.conftest import HttpResponse, make_state, serving

PARKING = b"# Parking\n\nParking permits are issued by the facilities team on floor two.\n"


def upload(client: TestClient, *files: tuple[str, bytes]) -> HttpResponse:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return client.post("/v1/documents", files=parts)


def files_under(folder: Path) -> set[str]:
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".lock"
    }


def stored(name: str, data: bytes) -> str:
    """Where an upload's bytes live under `uploads/`: a folder named by their content."""
    return f"{hashlib.sha256(data).hexdigest()[:16]}/{name}"


def test_upload_ingests_lists_and_answers(client: TestClient, index_dir: Path) -> None:
    response = upload(client, ("parking.md", PARKING))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["files"] == [
        {"name": "parking.md", "status": "added", "ids": ["uploads/parking.md"]}
    ]
    assert body["summary"]["added"] == 1
    assert files_under(index_dir / "uploads") == {stored("parking.md", PARKING)}
    listed = client.get("/v1/documents").json()["data"]
    ids = ["devices.md", "leave.md", "pricing.md", "uploads/parking.md"]
    assert [d["id"] for d in listed] == ids
    parking = next(d for d in listed if d["id"] == "uploads/parking.md")
    assert parking["title"] == "Parking" and parking["chunks"] == 1
    hits = client.post("/v1/search", json={"query": "parking permits facilities"}).json()["hits"]
    assert hits[0]["doc_id"] == "uploads/parking.md"


def test_uploading_the_same_name_again_replaces_the_document(
    client: TestClient, index_dir: Path
) -> None:
    upload(client, ("parking.md", PARKING))
    changed = PARKING.replace(b"floor two", b"floor three")
    body = upload(client, ("parking.md", changed)).json()
    assert body["summary"]["updated"] == 1 and body["summary"]["added"] == 0
    assert body["files"][0]["status"] == "updated"
    hits = client.post("/v1/search", json={"query": "parking permits", "k": 1}).json()["hits"]
    assert "floor three" in hits[0]["text"]
    assert files_under(index_dir / "uploads") == {stored("parking.md", changed)}


def test_delete_removes_the_document_and_its_upload(client: TestClient, index_dir: Path) -> None:
    upload(client, ("parking.md", PARKING))
    response = client.delete("/v1/documents/uploads/parking.md")
    assert response.status_code == 200, response.text
    assert response.json()["summary"]["removed"] == 1
    listed = [d["id"] for d in client.get("/v1/documents").json()["data"]]
    assert "uploads/parking.md" not in listed
    assert files_under(index_dir / "uploads") == set()
    assert client.delete("/v1/documents/uploads/parking.md").status_code == 404


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("../../evil.md", "evil.md"),
        ("..\\..\\evil.md", "evil.md"),
        ("/etc/cron.d/evil.md", "evil.md"),
        ("....//....//evil.md", "evil.md"),
        (".hidden.md", "hidden.md"),
        ("my notes (v2).txt", "my_notes_v2_.txt"),
        ("ﬁle.md", "file.md"),
        ("résumé.md", "r_sum_.md"),
        ("report.PDF", "report.pdf"),
    ],
)
def test_filenames_are_sanitized(given: str, stored: str) -> None:
    assert safe_filename(given) == stored


@pytest.mark.parametrize("name", ["", "..", "/", "noext", ".md", "x.exe", "../../.bashrc"])
def test_unusable_names_are_refused(name: str) -> None:
    from serve.http_errors import ApiError

    with pytest.raises(ApiError) as refused:
        safe_filename(name)
    assert refused.value.status == 400


def test_traversal_upload_lands_inside_uploads(client: TestClient, index_dir: Path) -> None:
    outside_before = files_under(index_dir.parent)
    response = upload(client, ("../../../evil.md", PARKING))
    assert response.status_code == 201, response.text
    assert response.json()["files"][0]["ids"] == ["uploads/evil.md"]
    created = files_under(index_dir.parent) - outside_before
    kept = {p for p in created if not p.startswith("index/gen-") and not p.endswith(".lock")}
    assert kept == {f"index/uploads/{stored('evil.md', PARKING)}"}


def test_a_symlink_in_uploads_is_not_followed(client: TestClient, index_dir: Path) -> None:
    target = index_dir.parent / "outside.md"
    target.write_text("untouched")
    planted = index_dir / "uploads" / stored("link.md", PARKING)
    planted.parent.mkdir(parents=True)
    planted.symlink_to(target)
    response = upload(client, ("link.md", PARKING))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "files"
    assert target.read_text() == "untouched"


def test_bad_uploads_are_4xx_and_leave_nothing(client: TestClient, index_dir: Path) -> None:
    assert upload(client, ("tool.exe", b"MZ")).status_code == 400
    assert upload(client, ("empty.md", b"")).status_code == 400
    assert client.post("/v1/documents", data={"files": "not a file"}).status_code == 400
    assert client.post("/v1/documents").status_code == 400
    uploads = index_dir / "uploads"
    assert not uploads.exists() or files_under(uploads) == set()
    assert len(client.get("/v1/documents").json()["data"]) == 3


def test_upload_over_the_limit_is_413(index_dir: Path) -> None:
    limits = Limits(max_upload_bytes=2_000)
    with serving(make_state(index_dir, limits=limits)) as client:
        response = upload(client, ("big.md", b"x" * 5_000))  # refused by the upload route
        assert response.status_code == 413
        response = upload(client, ("huge.md", b"x" * 100_000))  # refused before it is read
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        two = upload(client, ("a.md", b"a" * 900), ("b.md", b"b" * 900))
        assert two.status_code == 201, two.text  # each under, together under
        assert len(client.get("/v1/documents").json()["data"]) == 5
        over = upload(client, ("c.md", b"c" * 900), ("d.md", b"d" * 1_200))
        assert over.status_code == 413  # together over: neither is kept
    assert files_under(index_dir / "uploads") == {
        stored("a.md", b"a" * 900),
        stored("b.md", b"b" * 900),
    }


def test_uploads_need_the_key(index_dir: Path) -> None:
    with serving(make_state(index_dir, api_keys=["k"])) as client:
        assert upload(client, ("parking.md", PARKING)).status_code == 401
        client.headers["Authorization"] = "Bearer k"
        assert upload(client, ("parking.md", PARKING)).status_code == 201
