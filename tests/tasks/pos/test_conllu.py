"""Readers for tagged sentences: CoNLL-U edge cases, word/TAG and two-column files."""

from __future__ import annotations

import pytest

from tasks.pos.conllu import TAGGED_SUFFIXES, read_columns, read_conllu, read_tagged, sniff_format
from seqapps.data.splits import find_split_files
from seqapps.core.errors import DataError

CONLLU = """# newdoc id = d1
# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No
4.1\tknow\tknow\tVERB\tVB\t_\t_\t_\t0:root\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_


# sent_id = 2
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_conllu_comments_multiword_empty_nodes_and_breaks(tmp_path):
    path = write(tmp_path, "a.conllu", CONLLU)  # no final blank line, two blank lines in a row
    assert read_conllu(path) == [(["I", "do", "n't", "know", "."], ["PRON", "AUX", "PART", "VERB", "PUNCT"]),
                                 (["Hi"], ["INTJ"])]
    assert read_conllu(path, "xpos")[0][1] == ["PRP", "VBP", "RB", "VB", "."]
    assert read_tagged(path) == read_conllu(path)


def test_conllu_crlf_and_bom(tmp_path):
    path = tmp_path / "b.conllu"
    path.write_bytes(("\ufeff" + CONLLU.replace("\n", "\r\n") + "\r\n").encode("utf-8"))
    assert len(read_conllu(path)) == 2


@pytest.mark.parametrize("line,message", [
    ("1\tI\tI\tPRON\tPRP\t_\t0\troot\t_", "expected 10 tab-separated CoNLL-U columns, found 9"),
    ("x\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_", "word ID must be an integer"),
    ("1.5.2\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_", "word ID must be an integer"),
    ("1 I I PRON PRP _ 0 root _ _", "expected 10 tab-separated CoNLL-U columns, found 1"),
])
def test_conllu_malformed_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path, "bad.conllu", "# c\n1\tA\ta\tDET\tDT\t_\t0\troot\t_\t_\n" + line + "\n")
    with pytest.raises(DataError) as err:
        read_conllu(path)
    assert str(err.value).startswith(f"{path}:3: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_conllu_out_of_order_and_missing_columns(tmp_path):
    path = write(tmp_path, "c.conllu", "1\tA\ta\tDET\tDT\t_\t0\troot\t_\t_\n3\tB\tb\tNOUN\tNN\t_\t0\troot\t_\t_\n")
    with pytest.raises(DataError, match=r"c.conllu:2: word ID 3 out of order"):
        read_conllu(path)
    atis_like = write(tmp_path, "d.conllu", "1\tA\ta\tDET\t_\t_\t0\troot\t_\t_\n")
    with pytest.raises(DataError, match="XPOS column is empty"):
        read_conllu(atis_like, "xpos")
    with pytest.raises(DataError, match="no sentences"):
        read_conllu(write(tmp_path, "e.conllu", "# only a comment\n\n"))
    with pytest.raises(DataError, match="no such file"):
        read_conllu(tmp_path / "missing.conllu")
    (tmp_path / "f.conllu").write_bytes(b"1\tA\ta\tDET\tDT\t_\t0\troot\t_\t_\n1\t\xff\ta\tX\tX\t_\t0\troot\t_\t_\n")
    with pytest.raises(DataError, match=r"f.conllu:2: not UTF-8"):
        read_conllu(tmp_path / "f.conllu")


def test_slash_format(tmp_path):
    path = write(tmp_path, "s.txt", "The/DT cat/NN sat/VBD ./.\n\n1/2/CD of/IN it/PRP\n")
    assert sniff_format(path) == "slash"
    assert read_tagged(path) == [(["The", "cat", "sat", "."], ["DT", "NN", "VBD", "."]),
                                 (["1/2", "of", "it"], ["CD", "IN", "PRP"])]
    bad = write(tmp_path, "s2.txt", "The/DT cat/NN\nsat VBD\n")
    with pytest.raises(DataError, match=r"s2.txt:2: token 'sat' is not word/TAG"):
        read_tagged(bad)


def test_two_column_formats(tmp_path):
    spaces = write(tmp_path, "t.txt", "The DT\ncat NN\n\nHi UH\n")
    assert sniff_format(spaces) == "columns"
    assert read_tagged(spaces) == [(["The", "cat"], ["DT", "NN"]), (["Hi"], ["UH"])]
    conll2003 = write(tmp_path, "u.tsv", "-DOCSTART-\tO\n\nEU\tNNP\tB-NP\tB-ORG\nrejects\tVBZ\tB-VP\tO\n")
    assert read_tagged(conll2003) == [(["EU", "rejects"], ["B-ORG", "O"])]
    with pytest.raises(DataError, match=r"v.txt:2: expected 2 space-separated columns"):
        read_columns(write(tmp_path, "v.txt", "The DT\ncat NN extra\n"))


def test_find_split_files(tmp_path):
    for name in ["en_x-ud-train.conllu", "en_x-ud-dev.conllu", "en_x-ud-test.conllu", "README.md"]:
        write(tmp_path, name, "")
    found = find_split_files(tmp_path, sorted(TAGGED_SUFFIXES))
    assert {k: v.name for k, v in found.items()} == {
        "train": "en_x-ud-train.conllu", "val": "en_x-ud-dev.conllu", "test": "en_x-ud-test.conllu"}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="'train' in its name"):
        find_split_files(empty, sorted(TAGGED_SUFFIXES))
