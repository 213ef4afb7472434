"""The line-preserving .env document: unchanged files come back byte for byte, an edit touches one
line, and values mean what Compose reads."""

from __future__ import annotations

import pytest

from app.errors import InvalidInput
from app.stack.envfile import EnvDocument
from app.stack.envfile import encode_value

CORPUS = {
    "plain": b"A=1\nB=two\n",
    "comments": b"# top\n\n  # indented\nA=1 # inline\nB=x#notacomment\n#C=commented\n",
    "export": b"export A=1\nexport   B='two'\n",
    "quotes": b'A=\'single $X\'\nB="double \\"q\\" \\n $$ \\\\"\nC=""\nD=\'\'\nE=`back`\n',
    "escapes": b'A="tab\\there"\nB=\'back\\\\slash\'\nC="oct\\0101"\nD="dollar\\$x"\n',
    "equals_hash": b"URL=postgres://u:p@h/db?x=1&y=2#frag\nK==lead\nH='a # b'\n",
    "unicode": "NAME=Zoë\nJP='日本語'\nSPACE=\" nbsp\u00a0\"\n".encode(),
    "empty": b"",
    "only_newline": b"\n",
    "crlf": b"A=1\r\nB='two'\r\n# c\r\n\r\nC=\"x\"\r\n",
    "bom": b"\xef\xbb\xbfA=1\nB=2\n",
    "no_final_newline": b"A=1\nB=last",
    "duplicates": b"A=1\nB=2\nA=3\n",
    "blank_value": b"A=\nB= \nC= # only comment\n",
    "multiline_double": b'A="line1\nline2"\nB=after\n',
    "yaml_style": b"A: 1\nB : two\n",
    "inherited": b"FROM_ENV\nA=1\n",
    "spaces_around": b"  A = 1  \nB\t=\t'x'\t# t\n",
    "interpolation": b"HOST=db\nURL=postgres://${HOST}:5432\nRAW='${HOST}'\n",
    "invalid_utf8": b"A=\xff\xfe\nB=ok\n",
    "mixed_endings": b"A=1\r\nB=2\nC=3\r\n",
    "broken": b"A='unterminated\nB=2\n",
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_unchanged_document_is_byte_identical(name, tmp_path):
    path = tmp_path / ".env"
    path.write_bytes(CORPUS[name])
    doc = EnvDocument.load(path)
    assert doc.to_bytes() == CORPUS[name]


def _editable_keys(data: bytes) -> list[str]:
    doc = EnvDocument.parse(data)
    return [k for k in doc.keys() if not doc.entry(k).problem]


# Files with no key at all (empty, only newlines) have nothing to change.
EDITABLE = sorted(name for name in CORPUS if _editable_keys(CORPUS[name]))


def test_corpus_files_without_keys_are_only_the_empty_ones():
    assert {n for n in CORPUS if n not in EDITABLE} == {n for n in CORPUS if not CORPUS[n].strip()}


@pytest.mark.parametrize("name", EDITABLE)
def test_changing_one_key_changes_only_its_line(name):
    data = CORPUS[name]
    doc = EnvDocument.parse(data)
    key = _editable_keys(data)[-1]
    if name == "broken":
        with pytest.raises(InvalidInput):
            doc.set(key, "x")
        return
    before = doc.text().split("\n")
    assert doc.set(key, "new value with 'quote' and $dollar")
    after = doc.text().split("\n")
    assert len(after) == len(before)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(changed) == 1
    assert EnvDocument.parse(doc.to_bytes()).get(key) == "new value with 'quote' and $dollar"


def test_setting_the_same_value_changes_nothing():
    data = CORPUS["quotes"]
    doc = EnvDocument.parse(data)
    for key, value in doc.values().items():
        assert not doc.set(key, value)
    assert doc.to_bytes() == data


def test_values_follow_compose_rules():
    doc = EnvDocument.parse(CORPUS["quotes"] + CORPUS["escapes"].replace(b"A=", b"T=") + CORPUS["interpolation"])
    assert doc.get("A") == "single $X"
    assert doc.get("B") == "back\\\\slash"
    assert doc.get("C") == "oct" + "A"
    assert doc.get("D") == "dollar$x"
    assert doc.get("T") == "tab\there"
    assert doc.get("E") == "`back`"
    assert doc.get("URL") == "postgres://db:5432"
    assert doc.get("RAW") == "${HOST}"
    assert doc.entry("URL").uses_refs


def test_inline_comment_rules():
    doc = EnvDocument.parse(CORPUS["comments"] + CORPUS["blank_value"].replace(b"A=", b"Z=").replace(b"B=", b"Y="))
    assert doc.get("A") == "1"
    assert doc.entry("A").comment == "inline"
    assert doc.get("B") == "x#notacomment"
    assert doc.get("Z") == "" and doc.get("Y") == ""
    assert doc.get("C") == "# only comment"  # Compose: no space before the hash once `= ` is trimmed


def test_duplicates_last_wins_and_set_edits_the_effective_line():
    doc = EnvDocument.parse(CORPUS["duplicates"])
    assert doc.get("A") == "3" and doc.duplicates() == {"A"}
    doc.set("A", "4")
    assert doc.text() == "A=1\nB=2\nA=4\n"


def test_new_key_keeps_crlf_and_adds_missing_final_newline():
    doc = EnvDocument.parse(CORPUS["crlf"])
    doc.set("NEW", "v")
    assert doc.text().endswith('C="x"\r\nNEW=v\r\n')
    doc = EnvDocument.parse(CORPUS["no_final_newline"])
    doc.set("NEW", "v")
    assert doc.text() == "A=1\nB=last\nNEW=v\n"


def test_comment_and_export_survive_an_edit():
    doc = EnvDocument.parse(b"export A=1 # keep me\n")
    doc.set("A", "two words")
    assert doc.text() == "export A='two words' # keep me\n"
    doc.set("A", "")
    assert doc.text() == "export A='' # keep me\n"
    assert EnvDocument.parse(doc.to_bytes()).get("A") == ""


def test_problems_are_reported():
    doc = EnvDocument.parse(b"A='x' B=2\nC='open\nnot a statement\n")
    messages = " ".join(m for _, m in doc.problems())
    assert "another variable" in messages and "never closed" in messages


def test_injection_through_trailing_text_is_removed_on_edit():
    doc = EnvDocument.parse(b"A='x' B=2\n")
    doc.set("A", "y")
    assert doc.text() == "A=y\n"


@pytest.mark.parametrize("key", ["", "1A", "A-B", "A B", "A=B", "É"])
def test_bad_keys_are_refused(key):
    with pytest.raises(InvalidInput):
        EnvDocument.parse(b"").set(key, "x")


def test_nul_is_refused():
    with pytest.raises(InvalidInput):
        encode_value("a\x00b")


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("plain", "plain"),
        ("", ""),
        ("has space", "'has space'"),
        ("$HOME", "'$HOME'"),
        ("it's", '"it\'s"'),
        ("ends\\", '"ends\\\\"'),
        ("two\nlines", '"two\\nlines"'),
        ("$'", '"$$\'"'),
    ],
)
def test_writer_picks_the_plainest_quoting(value, written):
    assert encode_value(value) == written


def test_version_changes_with_content(tmp_path):
    path = tmp_path / ".env"
    absent = EnvDocument.load(path)
    assert not absent.exists and absent.version == "absent"
    path.write_bytes(b"A=1\n")
    v1 = EnvDocument.load(path).version
    path.write_bytes(b"A=2\n")
    assert EnvDocument.load(path).version != v1
