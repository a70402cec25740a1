import pytest
import torch
from safetensors import safe_open

from metasd_pyg.errors import ConfigError, MetaSDError
from metasd_pyg.export import encode_student, export_student, load_student, read_metadata
from metasd_pyg.models import MODEL_NAMES, build_model, score_tails

E, R = 400, 12


def _unstructured(model, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for name, p in model.named_parameters():
        keep = round(density * p.numel())
        idx = torch.randperm(p.numel(), generator=g)[:keep]
        m = torch.zeros(p.numel(), dtype=torch.bool)
        m[idx] = True
        masks[name] = m.view_as(p)
    return masks


def _nested(model, density, seed=0):
    """Degree-aware-like nested masks: row i keeps a prefix of one shared order."""
    g = torch.Generator().manual_seed(seed)
    masks = {}
    by_shape = {}
    for name, p in model.named_parameters():
        n, d = p.shape
        if (n, d) not in by_shape:
            order = torch.randperm(d, generator=g)
            raw = torch.rand(n, generator=g) ** 3 + 0.05
            k = (raw / raw.sum() * density * n * d).round().clamp(1, d).long()
            m = torch.arange(d)[None, :] < k[:, None]
            by_shape[(n, d)] = m[:, torch.argsort(order)]
        masks[name] = by_shape[(n, d)]
    return masks


def _model(name="complex", dim=100):
    torch.manual_seed(0)
    return build_model(name, E, R, dim, reciprocal=True)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_round_trip_scores_equal_masked_student(tmp_path, name):
    model = _model(name, dim=16)
    masks = _unstructured(model, 0.3)
    weights = {n: p.detach() * 1.5 for n, p in model.named_parameters()}  # trained != init
    ents = [f"ent_{i}" for i in range(E)]
    rels = [f"rel_{i}" for i in range(R)]
    info = export_student(tmp_path / "s.safetensors", model, masks, weights=weights,
                          entity_names=ents, relation_names=rels,
                          metadata={"source_run": "runs/x"})
    student = load_student(info.path)
    h = torch.arange(0, E, 7)
    r = torch.arange(h.numel()) % (2 * R)
    masked = {n: weights[n] * masks[n] for n in weights}
    ref = score_tails(model, h, r, weights=masked)
    torch.testing.assert_close(student.score_tails(h, r % R + (r >= R) * R), ref,
                               atol=1e-5, rtol=1e-5)
    # head side through the reciprocal relation
    rr = r % R
    ref_heads = score_tails(model, h, rr + R, weights=masked)
    torch.testing.assert_close(student.score_heads(rr, h), ref_heads, atol=1e-5, rtol=1e-5)
    meta = read_metadata(info.path)
    assert meta["model"] == name and meta["source_run"] == "runs/x"
    assert student.entity_names[3] == "ent_3" and meta["reciprocal"] is True
    assert info.nonzeros == sum(int(m.sum()) for m in masks.values())


def test_sizes_at_90_percent_sparsity(tmp_path):
    torch.manual_seed(0)
    n_ent, n_rel = 3000, 40  # FB15k-237-like names, dense teacher 2.5 MB
    model = build_model("complex", n_ent, n_rel, 100, reciprocal=True)
    ents = [f"/m/0{i:05x}" for i in range(n_ent)]
    rels = [f"/people/person/rel_{i}" for i in range(n_rel)]
    out = {}
    for kind, masks in (("csr", _unstructured(model, 0.1)), ("prefix", _nested(model, 0.1))):
        for dtype in ("fp32", "fp16"):
            info = export_student(tmp_path / f"{kind}-{dtype}.safetensors", model, masks,
                                  dtype=dtype, entity_names=ents, relation_names=rels)
            assert info.sparsity == pytest.approx(0.9, abs=0.01)
            assert info.dense_teacher_bytes == 4 * sum(p.numel() for p in model.parameters())
            out[kind, dtype] = info
            assert set(info.encodings.values()) == {kind}
            assert info.bytes == (tmp_path / f"{kind}-{dtype}.safetensors").stat().st_size
            blob, measured = encode_student(model, masks, dtype=dtype, entity_names=ents,
                                            relation_names=rels)
            assert measured.path is None and measured.bytes == len(blob) == info.bytes
    assert out["csr", "fp32"].ratio <= 0.16
    assert out["prefix", "fp32"].ratio <= 0.11
    for kind in ("csr", "prefix"):
        assert out[kind, "fp16"].bytes <= 0.65 * out[kind, "fp32"].bytes
    # ComplEx's imaginary tables share the structure of the real ones when masks agree
    with safe_open(out["prefix", "fp32"].path, "pt") as fh:
        keys = set(fh.keys())
    assert "node_emb.weight.k" in keys and "node_emb_im.weight.k" not in keys
    print({key: round(info.ratio, 4) for key, info in out.items()})
    # scores from the nested fp16 artifact are close to the fp32 student
    masks = _nested(model, 0.1)
    masked = {n: p.detach() * masks[n] for n, p in model.named_parameters()}
    h, r = torch.arange(10), torch.arange(10) % n_rel
    got = load_student(out["prefix", "fp16"].path).score_tails(h, r)
    torch.testing.assert_close(got, score_tails(model, h, r, weights=masked),
                               atol=1e-3, rtol=1e-2)
    exact = load_student(out["prefix", "fp32"].path).score_tails(h, r)
    torch.testing.assert_close(exact, score_tails(model, h, r, weights=masked),
                               atol=1e-5, rtol=1e-5)


def test_predict_by_name(tmp_path):
    model = _model("distmult", dim=8)
    ents = [f"e{i}" for i in range(E)]
    rels = [f"r{i}" for i in range(R)]
    path = export_student(tmp_path / "s.safetensors", model, None, entity_names=ents,
                          relation_names=rels).path
    student = load_student(path)
    top = student.predict(head="e5", relation="r2", k=5)
    scores = score_tails(model, torch.tensor([5]), torch.tensor([2]))[0]
    assert [a["id"] for a in top] == scores.argsort(descending=True)[:5].tolist()
    assert top[0]["entity"] == ents[top[0]["id"]] and top[0]["rank"] == 1
    heads = student.predict(tail="e5", relation="r2", k=3)
    ref = score_tails(model, torch.tensor([5]), torch.tensor([2 + R]))[0]
    assert [a["id"] for a in heads] == ref.argsort(descending=True)[:3].tolist()
    with pytest.raises(ConfigError, match="did you mean"):
        student.predict(head="e5x", relation="r2")
    with pytest.raises(ConfigError, match="exactly one"):
        student.predict(head="e5", tail="e6", relation="r2")


def test_names_default_to_ids_and_bad_files(tmp_path):
    model = _model("transe", dim=4)
    path = export_student(tmp_path / "s.safetensors", model, None).path
    student = load_student(path)
    assert student.entity_names[7] == "7"
    assert student.predict(head="7", relation="0", k=2)[0]["rank"] == 1
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    for bad in (tmp_path / "missing.safetensors", tmp_path / "junk.safetensors"):
        with pytest.raises(MetaSDError):
            load_student(bad)
    with pytest.raises(ConfigError, match="dtype"):
        export_student(tmp_path / "x.safetensors", model, None, dtype="int8")


def test_export_run_round_trip(tmp_path):
    from metasd_pyg.errors import RunFolderError
    from metasd_pyg.export import export_run
    from metasd_pyg.export.names import pack_names
    from metasd_pyg.storage import RunFolder

    model = _model("complex", dim=20)
    masks = _nested(model, 0.2)
    run = RunFolder.create(tmp_path / "run")
    with pytest.raises(RunFolderError, match="did not finish"):
        export_run(run, tmp_path / "s.safetensors")
    extra: dict = {}
    names = [f"entity number {i}" for i in range(E)]
    meta = {"model": "complex", "num_entities": E, "num_relations": R, "dim": 20,
            "reciprocal": True, "dataset": "toy", "mode": "metasd",
            "entity_names": pack_names(names, "entity_names", extra),
            "relation_names": pack_names([f"r{i}" for i in range(R)], "relation_names", extra)}
    run.write_model(dict(model.named_parameters()), masks, meta, extra=extra)
    info = export_run(run.path, tmp_path / "s.safetensors", dtype="fp32")
    student = load_student(info.path)
    assert student.entity_names == names and student.metadata["dataset"] == "toy"
    masked = {n: p.detach() * masks[n] for n, p in model.named_parameters()}
    h, r = torch.arange(20), torch.arange(20) % R
    torch.testing.assert_close(student.score_tails(h, r),
                               score_tails(model, h, r, weights=masked), atol=1e-5, rtol=1e-5)


def _rewrite(src, dst, edit_meta=None, edit_tensors=None):
    """Copy a student artifact, editing its header JSON and/or its tensors."""
    import json

    from safetensors.torch import save_file

    from metasd_pyg.export.artifact import METADATA_KEY

    with safe_open(str(src), "pt") as fh:
        header = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    meta = json.loads(header[METADATA_KEY])
    if edit_meta:
        edit_meta(meta)
    if edit_tensors:
        edit_tensors(tensors)
    header[METADATA_KEY] = json.dumps(meta)
    save_file(tensors, str(dst), metadata=header)
    return dst


def test_corrupt_but_parseable_students_are_named_not_allocated(tmp_path):
    """A crafted header or table is an ArtifactError naming the file, before any
    allocation of the size it claims (checked by removing the checks once: an
    IndexError and an attempted 1e12-row allocation)."""
    from metasd_pyg.export.loader import ArtifactError

    model = _model("complex", dim=16)
    src = export_student(tmp_path / "s.safetensors", model, _nested(model, 0.3)).path
    with safe_open(str(src), "pt") as fh:
        keys = list(fh.keys())
    k_key = next(k for k in keys if k.endswith(".k"))
    cases = {
        "huge.safetensors": (lambda m: m.update(num_entities=10**12), None,
                             r"shape \[400, 16\], the header's model \[1000000000000, 16\]"),
        "prefix.safetensors": (None, lambda t: t[k_key].__setitem__(0, 17),
                               r"prefix lengths outside \[0, 16\]"),
        "order.safetensors": (None, lambda t: t.__setitem__(
            k_key.replace(".k", ".order"), torch.zeros(16, dtype=torch.uint8)),
            "not a permutation"),
        "shape.safetensors": (lambda m: next(iter(m["tables"].values())).update(
            shape=[400, 10**9]), None, "shape"),
        "missing.safetensors": (lambda m: m["tables"].pop(next(iter(m["tables"]))), None,
                                "no table for"),
    }
    for name, (meta_edit, tensor_edit, message) in cases.items():
        bad = _rewrite(src, tmp_path / name, meta_edit, tensor_edit)
        with pytest.raises(ArtifactError, match=message) as info:
            load_student(bad)
        assert str(bad) in str(info.value)
