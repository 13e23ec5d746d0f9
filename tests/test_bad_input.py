"""Bad input gets one clear error naming the file and the line or column."""

import http.server
import io
import threading
import zipfile

import pytest
from conftest import ml100k_dir, write

from tfrec import data
from tfrec.data.cache import Archive
from tfrec.errors import DataError, DataNotFoundError


@pytest.mark.parametrize(
    "text, message",
    [
        ("1\t10\t5\t100\n2\t20\tfive\t200\n", r"u\.data: line 2: column 3 \(rating\) is 'five', not a number"),
        ("1\t10\t5\t100\n2\t20\t4\n", r"u\.data: line 2: expected 4 fields separated by '\\t', found 3"),
        ("1\t10\t5\t100\n\n2\t20\tnan\t200\n", r"u\.data: line 3: rating is 'nan', not a finite number"),
        ("1\t10\tinf\t100\n", r"u\.data: line 1: rating is 'inf', not a finite number"),
        ("1\t10\t5\tsoon\n", r"u\.data: line 1: column 4 \(timestamp\) is 'soon', not a number"),
        ("1\t\t5\t100\n", r"u\.data: line 1: column 2 \(item id\) is empty"),
        ("", r"u\.data: no ratings \(the file is empty\)"),
        ("\n \n", r"u\.data: no ratings \(the file is empty\)"),
    ],
    ids=["non-numeric", "short-row", "nan", "inf", "bad-timestamp", "empty-id", "empty-file", "blank-file"],
)
def test_malformed_ratings_file(tmp_path, text, message):
    write(tmp_path / "u.data", text)
    with pytest.raises(DataError, match=message):
        data.load_directory(tmp_path)


def test_string_ids_are_kept_when_not_integers(tmp_path):
    write(tmp_path / "u.data", "alice\tm1\t5\t100\nbob\tm2\t3\t200\n")
    table = data.load_directory(tmp_path)
    assert table.user_id.tolist() == ["alice", "bob"]


def test_crlf_and_bom_are_read(tmp_path):
    write(tmp_path / "u.data", "\ufeff1\t10\t5\t100\r\n2\t20\t3\t200\r\n")
    table = data.load_directory(tmp_path)
    assert table.user_id.tolist() == ["1", "2"] and table.rating.tolist() == [5.0, 3.0]


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("ratings.dat", "1::10::5::100\n1::10::5\n", r"ratings\.dat: line 2: expected 4 fields separated by '::'"),
        ("ratings.csv", "userId,movieId,score,timestamp\n1,2,3,4\n", r"ratings\.csv: line 1: header lacks .* rating"),
        (
            "x.inter",
            "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n",
            r"x\.inter: line 1: header lacks .* rating",
        ),
    ],
    ids=["ml-1m-short-line", "csv-missing-column", "recbole-missing-column"],
)
def test_other_layouts_name_file_and_line(tmp_path, name, text, message):
    write(tmp_path / name, text)
    with pytest.raises(DataError, match=message):
        data.load_directory(tmp_path)


def test_unknown_layout(tmp_path):
    write(tmp_path / "notes.txt", "hello\n")
    with pytest.raises(DataError, match="unknown MovieLens layout: expected u.data"):
        data.load_directory(tmp_path)


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("u.user", "1|24|M|technician|85711\n2|53|F\n", r"u\.user: line 2: expected at least 5 fields"),
        ("u.user", "1|24|M|astronaut|85711\n", r"u\.user: line 1: unknown occupation 'astronaut'"),
        ("u.data", "1\t10\t5\t100\n2\t99\t3\t200\n", r"u\.data: rating 2 names movie '99', which the movies file"),
    ],
    ids=["short-user-line", "unknown-occupation", "unlisted-movie"],
)
def test_ml100k_side_file_errors(tmp_path, name, text, message):
    ml100k_dir(tmp_path)
    write(tmp_path / name, text)
    with pytest.raises(DataError, match=message):
        data.load_directory(tmp_path)


def test_empty_split_is_an_error(tmp_path):
    write(tmp_path / "u.data", "1\t10\t5\t100\n")
    table = data.load_directory(tmp_path)
    with pytest.raises(DataError, match="the test part is empty"):
        data.random_split(table, 0.2)
    with pytest.raises(DataError, match="test_fraction must be in"):
        data.random_split(table, 1.5)
    with pytest.raises(DataError, match="unknown split 'u9'"):
        data.split(table, "u9")


def test_arrays_of_different_length():
    with pytest.raises(DataError, match="column 'movie_id' has 1 rows, user_rating has 2"):
        data.Ratings.from_arrays(["1", "2"], ["1"], [1.0, 2.0])


def test_pipeline_rejects_unknown_feature_and_bad_batch(tmp_path):
    table = data.load_directory(ml100k_dir(tmp_path))
    with pytest.raises(DataError, match="no feature\\(s\\) colour"):
        data.dataset(table, 2, features=["user_id", "colour"])
    with pytest.raises(DataError, match="batch_size must be a positive integer"):
        data.dataset(table, 0)


# --- downloads, served from 127.0.0.1 -------------------------------------------------


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("ml-test/u.data", "1\t10\t5\t100\n2\t20\t3\t200\n")
    return buffer.getvalue()


@pytest.fixture
def server():
    """Serves one zip at /ml-test.zip and a 404 elsewhere, on a free loopback port."""
    payload = _zip_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path == "/ml-test.zip":
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", payload
    httpd.shutdown()


def test_download_verifies_and_extracts(cache, server):
    import hashlib

    url, payload = server
    archive = Archive(f"{url}/ml-test.zip", len(payload), hashlib.sha256(payload).hexdigest())
    path = data.download("ml-test", archive)
    assert path == cache / "ml-test" and (path / "u.data").is_file()
    assert sorted(p.name for p in cache.iterdir()) == [".ml-test.lock", "ml-test"]  # no temporary left behind
    assert data.cache.verify("ml-test") == path
    assert len(data.load_directory(path)) == 2


def test_tampered_download_leaves_nothing(cache, server):
    url, payload = server
    archive = Archive(f"{url}/ml-test.zip", len(payload), "0" * 64)
    with pytest.raises(DataError, match="is corrupt: got .* expected .* sha256 0000"):
        data.download("ml-test", archive)
    assert [p.name for p in cache.iterdir()] == [".ml-test.lock"]


def test_truncated_download_leaves_nothing(cache, server):
    import hashlib

    url, payload = server  # the server sends the whole zip; the archive says it is longer: a cut transfer
    archive = Archive(f"{url}/ml-test.zip", len(payload) + 100, hashlib.sha256(payload + b"x" * 100).hexdigest())
    with pytest.raises(DataError, match=f"is corrupt: got {len(payload)} bytes"):
        data.download("ml-test", archive)
    assert [p.name for p in cache.iterdir()] == [".ml-test.lock"]


def test_failed_download_leaves_nothing(cache, server):
    url, _ = server
    with pytest.raises(DataNotFoundError, match="download of .*/missing.zip failed"):
        data.download("ml-test", Archive(f"{url}/missing.zip", 1, "0" * 64))
    assert [p.name for p in cache.iterdir()] == [".ml-test.lock"]


def test_known_archives_come_from_tfds_checksums():
    archives = data.known_archives()
    assert archives["ml-100k"].sha256 == "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"
    assert {"ml-1m", "ml-20m", "ml-25m", "ml-latest-small"} <= set(archives)
