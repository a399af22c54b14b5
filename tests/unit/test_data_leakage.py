"""Leakage audit: every planted copy type found with the right transform (and harder copies
too); distinct synthetic images are not flagged; leak-free test excludes the copies."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance

from boneflow.duplicates.grouping import near_pairs
from boneflow.duplicates.leakage import DEFAULT_MAX_DISTANCE, audit_leakage
from boneflow.intake.decode import decode_xray
from boneflow.intake.validate import HASH_BITS, _hashes


def test_every_planted_copy_is_found(demo_validated):
    _, planted, _, _, audit = demo_validated
    found = {(p["a"], p["b"]): p for p in audit.report["pairs"]}
    assert {c["kind"] for c in planted["copies"]} == {"exact", "reencoded", "resized", "mirrored"}
    for copy in planted["copies"]:
        pair = found.get((copy["original"], copy["copy"]))
        assert pair is not None, copy
        assert pair["distance"] <= DEFAULT_MAX_DISTANCE
        if copy["kind"] == "mirrored":
            assert pair["transform"] == "mirror"
        if copy["kind"] == "exact":
            assert pair["distance"] == 0


def test_report_names_hash_and_threshold(demo_validated):
    report = demo_validated[4].report
    assert report["hash_bits"] == HASH_BITS == 256 and "hash_size=16" in report["hash"]
    assert report["max_distance"] == DEFAULT_MAX_DISTANCE


def _distance(h_a: np.ndarray, h_b: np.ndarray) -> int:
    return int(np.bitwise_count(h_a[0][None, :] ^ h_b).sum(axis=1).min())


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_harder_copies_are_within_the_threshold(demo):
    """Copies harsher than the planted ones (JPEG q30-60, 0.35-0.5x, mirror, 90 degrees, contrast),
    decoded and hashed as validation does (pack size 256, the audit's default), stay within the
    default distance of their original."""
    path, planted = demo
    root = path / planted["root"]
    rng = np.random.default_rng(7)
    originals = [im["path"] for im in planted["images"] if im["path"].endswith(".jpg")][5:13]
    T = Image.Transpose
    for rel in originals:
        data = (root / rel).read_bytes()
        h0 = _hashes(decode_xray(data, 256)[1])
        img = Image.open(io.BytesIO(data)).convert("L")
        s = rng.uniform(0.35, 0.5)
        copies = {
            "jpeg": _jpeg(img, int(rng.integers(30, 61))),
            "resized": _jpeg(
                img.resize((max(32, int(img.width * s)), max(32, int(img.height * s))), Image.Resampling.BICUBIC), 90
            ),
            "mirrored": _jpeg(img.transpose(T.FLIP_LEFT_RIGHT), 90),
            "rot90": _jpeg(img.transpose(T.ROTATE_90), 90),
            "contrast": _jpeg(ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.25)), 90),
        }
        for kind, copy in copies.items():
            d = _distance(h0, _hashes(decode_xray(copy, 256)[1]))
            assert d <= DEFAULT_MAX_DISTANCE, (rel, kind, d)


def test_distinct_synthetic_images_are_not_flagged(tmp_path):
    """Similar-looking but distinct radiographs (no planted copies): no cross-split pair. On this
    set (seed 5, 400 images, pack size 64) the former 64-bit phash at its threshold of 4 flagged 2
    distinct pairs (one at distance 2); see scripts/measure_leakage.py --baseline64 for full-size figures."""
    from boneflow.demo.dataset import dataset_root, write_demo_dataset
    from boneflow.intake.validate import validate_dataset

    write_demo_dataset(tmp_path / "d", n=400, seed=5, defects=False)
    validated = validate_dataset(dataset_root(tmp_path / "d"), workdir=tmp_path / "w", pack_size=64, workers=2)
    audit = audit_leakage(validated)
    assert audit.report["pairs"] == [], audit.report["pairs"][:5]
    assert len(audit.leakfree_test) == audit.report["counts"]["test"] > 40


def test_leakfree_test_excludes_the_copies(demo_validated):
    _, planted, _, validated, audit = demo_validated
    test_copies = {c["copy"] for c in planted["copies"] if c["copy"].startswith("test/")}
    assert test_copies and not test_copies & set(audit.leakfree_test)
    assert test_copies <= set(audit.report["leaking_test"])
    all_test = {r.relpath for r in validated.records if r.split == "test"}
    assert set(audit.leakfree_test) | set(audit.report["leaking_test"]) == all_test


def test_near_pairs_matches_brute_force_multiword():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**63, size=(300, 5, 4), dtype=np.uint64)  # > one block of rows
    b = rng.integers(0, 2**63, size=(40, 5, 4), dtype=np.uint64)
    b[5, 3] = a[260, 0]
    b[5, 3, 2] ^= np.uint64(0b111)  # distance 3, via transform 3
    b[9, 0] = a[1, 0]
    got = near_pairs(a, b, max_distance=5)
    bits = lambda x, y: sum(bin(int(p) ^ int(q)).count("1") for p, q in zip(x, y))  # noqa: E731
    want = {(i, j) for i in range(300) for j in range(40) if min(bits(a[i, 0], b[j, t]) for t in range(5)) <= 5}
    pairs = list(zip(got[0].tolist(), got[1].tolist()))
    assert set(pairs) == want == {(260, 5), (1, 9)}
    info = {p: (d, t) for p, d, t in zip(pairs, got[2].tolist(), got[3].tolist())}
    assert info[(260, 5)] == (3, 3) and info[(1, 9)] == (0, 0)


def test_near_pairs_matches_brute_force():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**63, size=(70, 5), dtype=np.uint64)
    b = rng.integers(0, 2**63, size=(90, 5), dtype=np.uint64)
    b[7, 2] = a[3, 0] ^ np.uint64(0b101)  # distance 2 via transform column 2
    b[8, 0] = a[4, 0]
    got = near_pairs(a[..., None], b[..., None], max_distance=3)  # one 64-bit word per hash
    want = {
        (i, j)
        for i in range(70)
        for j in range(90)
        if min(bin(int(a[i, 0]) ^ int(b[j, t])).count("1") for t in range(5)) <= 3
    }
    assert set(zip(got[0].tolist(), got[1].tolist())) == want == {(3, 7), (4, 8)}
    assert dict(zip(zip(got[0].tolist(), got[1].tolist()), got[3].tolist()))[(3, 7)] == 2


def test_hashes_equal_imagehash_phash_and_hashes_of_the_turned_images():
    # Our five hashes come from one DCT; they must be imagehash's phash (identity, and mirror /
    # 180 exactly), and within a few bits of hashing the actually turned image for 90/270.
    import imagehash
    from PIL import Image

    from boneflow.intake.validate import HASH_TRANSFORMS, _hashes

    rng = np.random.default_rng(3)
    base = Image.fromarray((rng.random((40, 60)) * 255).astype(np.uint8)).resize((180, 120))
    t = Image.Transpose
    turned = {
        "identity": base,
        "mirror": base.transpose(t.FLIP_LEFT_RIGHT),
        "rot90": base.transpose(t.ROTATE_90),
        "rot180": base.transpose(t.ROTATE_180),
        "rot270": base.transpose(t.ROTATE_270),
    }
    ours = _hashes(base)
    for row, name in enumerate(HASH_TRANSFORMS):
        ref = np.frombuffer(
            np.packbits(imagehash.phash(turned[name], hash_size=16).hash.reshape(-1)).tobytes(), dtype=">u8"
        ).astype(np.uint64)
        distance = sum(bin(int(a) ^ int(b)).count("1") for a, b in zip(ours[row], ref))
        assert distance <= (0 if name in ("identity", "mirror", "rot180") else 8), (name, distance)


def test_planted_duplicate_groups_are_found_whole(demo_validated):
    """Every planted family (byte-identical copies, small-angle turned copies and their chains,
    near copies) ends up in one duplicate group; groups never mix two planted families."""
    from demo_helpers import planted_groups

    _, planted, _, validated, audit = demo_validated
    group_of = {r.relpath: int(g) for r, g in zip(validated.records, audit.groups.group.tolist())}
    truth = planted_groups(planted)
    assert any(d["kind"] == "rotated" for d in planted["duplicates"])
    seen: dict[int, int] = {}
    for k, members in enumerate(truth):
        ids = {group_of[m] for m in members if m in group_of}
        assert len(ids) == 1, (sorted(members), ids)
        g = ids.pop()
        assert seen.setdefault(g, k) == k, "two planted families share one group"


def test_contamination_counts_the_planted_test_copies(demo_validated):
    _, planted, _, validated, audit = demo_validated
    contam = audit.report["contamination"]
    test = [r for r in validated.records if r.split == "test"]
    assert contam["official_test"] == len(test)
    assert contam["copies_in_train_val"]["any"] == contam["official_test"] - contam["leakfree"]
    assert contam["copies_in_train_val"]["rotated"] >= 1  # families span train/val/test
    assert contam["leakfree"] == len(audit.leakfree_test)


def test_a_radiograph_under_both_labels_is_listed_by_the_audit(demo, tmp_path):
    """A byte copy filed under the other class: one group with both labels, named with its files."""
    import shutil

    from boneflow.demo.dataset import dataset_root
    from boneflow.intake.validate import validate_dataset

    path, planted = demo
    src = dataset_root(path)
    root = tmp_path / "ds"
    picked = {}
    for im in planted["images"]:
        split, cls = im["path"].split("/")[:2]
        if im["path"].endswith(".jpg") and len(picked.setdefault((split, cls), [])) < 4:
            picked[(split, cls)].append(im["path"])
    for rels in picked.values():
        for rel in rels:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, root / rel)
    original = picked[("train", "fractured")][0]
    conflicting = "train/not fractured/relabelled copy.jpg"
    shutil.copyfile(src / original, root / conflicting)
    validated = validate_dataset(root, workdir=tmp_path / "work", pack_size=64, workers=1)
    report = audit_leakage(validated).report
    assert report["counts"]["mixed_label_groups"] == 1
    [mixed] = report["mixed_label_groups"]
    assert mixed["files"] == sorted([original, conflicting]) and len(mixed["group"]) == 12


def test_a_test_image_whose_only_copy_is_in_val_is_not_leakfree(tmp_path):
    """Leak-free means no copy in train *or* val: val picks the threshold and the epoch, so a
    test image seen there is no unseen test. A val image copied into test (same bytes, and
    another mirrored) leaks although train holds no copy of it; the test images of their own stay."""
    from boneflow.demo.dataset import dataset_root, write_demo_dataset
    from boneflow.intake.validate import validate_dataset

    write_demo_dataset(tmp_path / "d", n=48, seed=7, defects=False)
    root = dataset_root(tmp_path / "d")
    val = sorted(p.relative_to(root).as_posix() for p in (root / "val").rglob("*.jpg"))
    own_test = sorted(p.relative_to(root).as_posix() for p in (root / "test").rglob("*") if p.is_file())
    assert len(val) >= 2 and own_test
    byte_copy = f"test/{val[0].split('/')[1]}/val copy.jpg"  # each copy under its original's class
    mirrored = f"test/{val[1].split('/')[1]}/val mirrored.jpg"
    (root / byte_copy).write_bytes((root / val[0]).read_bytes())
    Image.open(root / val[1]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / mirrored, quality=95)

    validated = validate_dataset(root, workdir=tmp_path / "w", pack_size=64, workers=1)
    audit = audit_leakage(validated)
    report = audit.report

    assert sorted(report["leaking_test"]) == sorted([byte_copy, mirrored])
    assert not {byte_copy, mirrored} & set(audit.leakfree_test)
    assert sorted(audit.leakfree_test) == sorted(report["leakfree_test"]) == own_test
    # the copies pair with val, never with train
    pairs = {(p["a"], p["b"]): p for p in report["pairs"]}
    assert pairs[(val[0], byte_copy)]["kind"] == "exact"
    assert pairs[(val[1], mirrored)]["transform"] == "mirror"
    assert all(p["split_a"] == "val" and p["split_b"] == "test" for p in report["pairs"]), report["pairs"]
    contam = report["contamination"]
    assert contam == {
        "official_test": len(own_test) + 2,
        "copies_in_train_val": {"exact": 1, "near": 1, "rotated": 0, "any": 2},
        "leakfree": len(own_test),
        "leakfree_radiographs": len(own_test),  # distinct images: one radiograph each
    }
