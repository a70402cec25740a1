"""Known SHA-256 checksums of benchmark archives and their split files.

The archive checksums are those of the offline copies described in
``datasets/README.md``; the per-file checksums are those of the ``train.txt``,
``valid.txt`` and ``test.txt`` inside them, which are byte-identical to the
files that PyG downloads. A known archive whose checksum differs is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: SHA-256 of known archives, by file name.
ARCHIVE_SHA256: dict[str, str] = {
    "FB15k-237.tar.gz": "8c8fbc1bc7b428d29dcc6175bf66ad11298fd82a7c36760ece457942a6d08e94",
    "WN18RR.tar.gz": "1eb9152f804c140d163462c0d49f65e5a0b30ab5fbb375c5e3353c11a6249060",
    "kinship.tar.gz": "a3cb9ca67213eb38133aebc12901195e283d844ebd59f1a6cbf2d4fa12ced4e6",
    "nations.tar.gz": "feb3e3e027103089934ea7dfb67d2048d8a43e65d6757a86f2e037acb66f640b",
    "umls.tar.gz": "26223aa91f0ec8db2324e0f489b9a4425e04d1d0df72ce5cfd62af4b91aee6fd",
}

#: SHA-256 of the split files, by dataset name, then file name.
FILE_SHA256: dict[str, dict[str, str]] = {
    "fb15k-237": {
        "train.txt": "61099230e4439f90885ca9767739e31e8e32f54736fa1c35952b27997bc7c08a",
        "valid.txt": "749cbe9d923bac7b9354da5614ecfed2e0220256d442c3e04a6b303db1f273d9",
        "test.txt": "e2e35e8e6113de220140b6f44dc71a5207b0fc6872d575e874aefe13259b655b",
    },
    "wn18rr": {
        "train.txt": "038612e783c215ee5f3ca9fbfca27b8d0739be1028fe4ee7c174aecf0b83d5df",
        "valid.txt": "453ce7202afa58094a04d2b1560ee2b02660f1c260b32ce6651c8ccedd1028ab",
        "test.txt": "0383bceaaa1096cf3c03ec021ed0048068e2355dbfc0239b292cefdac821cec5",
    },
    "umls": {
        "train.txt": "873ef4925516b83e7f6f8cc02b4be51d848828710a7f65a956f0ac4a9e452f35",
        "valid.txt": "025c98f8a4891e2a6582ec5b40ee0d904031edad9c52554522f4b7904820c98e",
        "test.txt": "a7eb529a3d2810fcc96341ccc97c625a5e202f8389673aa6bd317eeebbb79014",
    },
    "kinship": {
        "train.txt": "738612111a6acf0e39662bde24c7e72a4d1edf20931beea077da367dda689731",
        "valid.txt": "c56f8630a583178b1e569f11a64aa535ae1ce0b0912d8b1e24716be2b37f04da",
        "test.txt": "05e5733265761d55be9c05bfaff5a8d0808df46f9c1e9d66cc3f2fe114e43d88",
    },
    "nations": {
        "train.txt": "0830fa9da8e5bba2ccdaa45b7bdc9130451ba66b09ff2708f35fccaf82473e57",
        "valid.txt": "2b337a62e51a2f45c283eac98a70d21b7e0e102136be1539b2a52c652a7b0530",
        "test.txt": "3971085165b47b6aeaec68058c6d8d98b3005e929db81268410b95ae4db770ab",
    },
}


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of the file at ``path``, read in chunks.

    Args:
        path: File to hash.
        chunk: Read size in bytes.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
