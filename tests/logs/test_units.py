"""The logstream package on its own: ANSI, line assembly, filters, rendering, the bounded queue."""

from __future__ import annotations

import threading

import pytest

from app.errors import InvalidInput
from app.logstream import ansi
from app.logstream.filters import LineFilter
from app.logstream.lines import Assembler
from app.logstream.lines import parse_stamp
from app.logstream.options import from_params
from app.logstream.options import parse_since
from app.logstream.queue import LineQueue
from app.logstream.queue import Skipped
from app.logstream.render import line_html

STAMP = b"2024-05-01T10:00:00.5Z "


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain", [("plain", "")]),
        ("\x1b[31mred\x1b[0m ok", [("red", "a-f1"), (" ok", "")]),
        ("\x1b[1;4;92mx\x1b[22my", [("x", "a-f10 a-bold a-ul"), ("y", "a-f10 a-ul")]),
        ("\x1b[38;5;196mhot\x1b[39m", [("hot", "a-f1")]),
        ("\x1b[48;2;0;0;0mbg", [("bg", "a-b0")]),
        ("a\x1b[2Kb\x1b]0;title\x07c\x1b(Bd\x07e\x00f", [("abcdef", "")]),
        ("tab\tkept\r", [("tab\tkept", "")]),
    ],
)
def test_ansi_keeps_sgr_as_classes_and_strips_the_rest(raw, expected):
    assert ansi.segments(raw) == expected


def test_render_escapes_everything_and_marks_across_styles():
    segs = ansi.segments('\x1b[31m<b a="1">\x1b[0m & done')
    assert line_html(segs) == '<span class="a-f1">&lt;b a=&quot;1&quot;&gt;</span> &amp; done'
    text = ansi.plain(segs)
    marks = LineFilter('/">\\s&/').match(text)
    assert line_html(segs, marks) == (
        '<span class="a-f1">&lt;b a=&quot;1<mark>&quot;&gt;</mark></span><mark> &amp;</mark> done'
    )


def test_assembler_joins_engine_split_lines_and_cuts_at_16k():
    asm = Assembler(source=0, limit=16)
    assert asm.feed(1, STAMP + b"0123456789") is None
    assert asm.feed(2, STAMP + b"err line\n").text == "err line"  # the other stream is independent
    assert asm.feed(1, b"2024-05-01T10:00:01Z abcdefghij") is None
    line = asm.feed(1, b"2024-05-01T10:00:02Z xyz\n")
    assert (line.text, line.cut, line.stamp) == ("0123456789abcdef", 7, "2024-05-01T10:00:00.5Z")
    assert asm.feed(1, STAMP + b"\xff\xfeok\r\n").text == "\ufffd\ufffdok"


def test_timestamps_parse_to_nanoseconds():
    assert parse_stamp(b"1970-01-01T00:00:01.000000002Z") == 1_000_000_002
    assert parse_stamp(b"1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_stamp(b"1970-01-01T00:00:01Z") == 1_000_000_000
    assert parse_stamp(b"not a time") is None


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("", "anything", []),
        ("ERR", "an error here", [(3, 6)]),
        ("/e.r/", "an error here", [(3, 6)]),
        ("/E.R/", "an error here", None),
        ("/E.R/i", "an error here", [(3, 6)]),
        ("/x*/", "abc", []),
        ("a.b", "axb", None),
    ],
)
def test_filters(query, text, expected):
    assert LineFilter(query).match(text) == expected


@pytest.mark.parametrize("query", ["/(/", "/[a-/", "//"])
def test_bad_regex_is_refused_with_a_message(query):
    with pytest.raises(InvalidInput):
        LineFilter(query)


def test_options_parse_and_refuse():
    opts = from_params({"tail": "all", "since": "5m", "follow": "0", "q": "x"})
    assert (opts.tail, opts.follow, opts.query) == (None, False, "x")
    assert parse_since("2024-05-01T10:00:00Z") == 1714557600 * 10**9
    assert parse_since("2024-05-01T10:00") == 1714557600 * 10**9
    assert parse_since("1h", now=7200) == 3600 * 10**9
    assert from_params({"form": "1"}).follow is False
    for bad in ({"tail": "-1"}, {"tail": "lots"}, {"since": "yesterday"}, {"q": "/(/"}):
        with pytest.raises(InvalidInput):
            from_params(bad)


def test_queue_drops_live_lines_when_full_and_says_where():
    q = LineQueue(max_items=3)
    for i in range(5):
        q.put(i)
    q.put("note", force=True)
    assert q.get_batch(wait=0) == [0, 1, 2, Skipped(2), "note"]  # the gap is reported where it was
    q.put(5)
    q.put(6)
    assert q.get_batch(wait=0) == [5, 6]
    assert q.total_skipped == 2


def test_queue_makes_history_wait_instead_of_dropping():
    q = LineQueue(max_items=2)
    done = threading.Event()

    def producer():
        for i in range(6):
            q.put(i, block=True)
        done.set()

    threading.Thread(target=producer, daemon=True).start()
    got = []
    while len(got) < 6:
        got += q.get_batch(max_items=1, wait=2)
    assert got == list(range(6))
    assert done.wait(2)
    assert q.total_skipped == 0


def test_runaway_regex_is_stopped_and_counted_not_hung():
    from app.logstream.filters import LineFilter

    search = LineFilter("/(a|aa)+$/")
    assert search.match("a" * 60 + "b") is None  # would take minutes with the standard re
    assert search.timeouts == 1
    assert search.match("aaaa") == [(0, 4)]


def test_absurd_sgr_code_is_ignored_not_fatal():
    from app.logstream.ansi import segments

    text = "".join(part for part, _classes in segments("\x1b[" + "9" * 5000 + "mhello \x1b[;31mred"))
    assert text == "hello red"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def test_frame_reader_reads_any_chunk_shape_in_any_block_size():
    import struct

    from app.engine.logs import FrameReader
    from app.engine.logs import runs_messages

    def frame(kind: int, message: bytes) -> bytes:
        return struct.pack(">BxxxL", kind, len(message)) + message

    msgs = [(2 if i % 7 == 0 else 1, b"2024-05-01T10:00:00.%09dZ line %d\n" % (i, i)) for i in range(1200)]
    msgs[100] = (1, b"2024-05-01T10:00:00.000000100Z a piece of a long line, no newline")
    msgs[200] = (2, b"no stamp at all\n")
    msgs[300] = (1, b"2024-05-01T10:00:00.000000300Z " + b"x" * 20000 + b"\n")
    body = b""
    i = 0
    while i < len(msgs):
        if (i // 200) % 2:  # the engine's shape (one frame per chunk) alternates with odd ones
            both = frame(*msgs[i]) + (frame(*msgs[i + 1]) if i + 1 < len(msgs) else b"")
            body += _chunk(both[: len(both) // 3]) + _chunk(both[len(both) // 3 :])
            i += 2
        else:
            body += _chunk(frame(*msgs[i]))
            i += 1
    body += b"0\r\n\r\n"
    for size in (1, 13, 4096, len(body)):
        reader = FrameReader(chunked=True)
        got = []
        for pos in range(0, len(body), size):
            runs = reader.feed(body[pos : pos + size])
            assert all(count == 0 or data.count(b"\n") == count for _kind, data, count in runs)
            got += runs_messages(runs)
        assert got == msgs, f"block size {size}"
        assert reader.done
    plain = FrameReader(chunked=False)
    assert runs_messages(plain.feed(b"".join(frame(*m) for m in msgs[:50]))) == msgs[:50]


def test_a_run_renders_as_its_lines_would_one_by_one():
    from app.logstream.lines import render_run

    stamp = b"2024-05-01T10:00:00.123456789Z "
    texts = [
        b"plain",
        b"<b a=\"1\"> & 'q'",
        b"\x1b[31mred\x1b[0m ok",
        b"tab\tkept\r",
        b"\xc2\x9b31mx",
        b"\xe2\x9b\x84 snowman",
        b"\xff\xfe bad",
        b"",
    ]
    for chosen in (texts, texts[:1], texts[:2], texts[5:6]):
        asm = Assembler(source=0)
        expected = [stamp.decode() + line_html(asm.feed(1, stamp + t + b"\n").segments) for t in chosen]
        assert render_run(b"".join(stamp + t + b"\n" for t in chosen)).split("\n") == expected


def test_queue_caps_and_skips_count_the_lines_of_a_run():
    from app.logstream.lines import LineRun

    q = LineQueue(max_items=10)
    runs = [LineRun(0, 1, "x", 4, 0, 0) for _ in range(4)]
    assert q.put_many(runs, [1] * 4, wait=0, counts=[4] * 4) == 2  # 8 lines fit, 12 do not
    assert q.get_batch(wait=0) == runs[:2] + [Skipped(8)]


def test_the_pause_between_frames_ends_when_a_flood_fills_the_queue():
    import time

    from app.logstream.lines import LineRun

    q = LineQueue()
    start = time.monotonic()
    q.wait_for(2000, 0.2)  # nothing comes: the whole pause
    assert time.monotonic() - start >= 0.19

    def producer():
        for _ in range(3):
            time.sleep(0.05)
            q.put_many([LineRun(0, 1, "x", 1000, 0, 0)], [1000], counts=[1000])

    threading.Thread(target=producer, daemon=True).start()
    start = time.monotonic()
    q.wait_for(2000, 5.0)
    assert time.monotonic() - start < 2.0 and q.waiting >= 2000
