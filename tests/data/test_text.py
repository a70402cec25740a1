"""Text parsing and id assignment against a naive reference (hypothesis)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.data.build import drop_duplicates
from metasd_pyg.data.text import graph_from_columns, parse_split

names = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
                min_size=1, max_size=4)
triple_lists = st.lists(st.tuples(names, names, names), min_size=1, max_size=25)
endings = st.sampled_from(["\n", "\r\n", " \n", "\t\r\n", "  \t\n"])


def _naive(splits):
    ents, rels, out, dups = {}, {}, {}, {}
    for split in ("train", "valid", "test"):
        for h, r, t in splits[split]:
            for e in (h, t):
                ents.setdefault(e, len(ents))
            rels.setdefault(r, len(rels))
    for split in ("train", "valid", "test"):
        seen, rows = set(), []
        for h, r, t in splits[split]:
            key = (ents[h], rels[r], ents[t])
            if key not in seen:
                seen.add(key)
                rows.append(key)
        out[split] = rows
        dups[split] = len(splits[split]) - len(rows)
    return list(ents), list(rels), out, dups


@settings(max_examples=60, deadline=None)
@given(triple_lists, triple_lists, triple_lists, st.data())
def test_parse_and_ids_match_naive_reference(train, valid, test, data):
    splits = {"train": train, "valid": valid, "test": test}
    cols = {}
    for split, triples in splits.items():
        text = "".join(f"{h}\t{r}\t{t}{data.draw(endings)}" for h, r, t in triples)
        if data.draw(st.booleans()):
            text += "\r\n\n"
        cols[split] = parse_split(text.encode("utf-8"), f"{split}.txt")
    g = graph_from_columns("toy", cols, "test")
    ents, rels, out, dups = _naive(splits)
    assert g.entity_names == ents and g.relation_names == rels
    for split in out:
        assert g.split(split).tolist() == [list(x) for x in out[split]]
    assert g.num_duplicates == dups


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 3)),
                max_size=30))
def test_drop_duplicates_keeps_first_occurrences(triples):
    t = torch.tensor(triples, dtype=torch.long).view(-1, 3)
    got, n = drop_duplicates(t, 4, 3)
    want = list(dict.fromkeys(triples))
    assert got.tolist() == [list(x) for x in want] and n == len(triples) - len(want)
