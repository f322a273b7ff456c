"""The machine fingerprint (store/meta.py) and the install token (measure/host.py): the same
hardware under another host name keeps its ids, another GPU changes them, two machines of
one kind share a hardware id and not a machine id, and older files get one from what they
recorded. Host facts are injected, never read from this machine."""

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from nanobench.errors import InputError
from nanobench.measure import host
from nanobench.store import results
from nanobench.store.meta import machine_fingerprint, machine_record, simd_class

REPO = Path(__file__).resolve().parents[2]
OLD = REPO / "results" / "examples" / "cpu-fp32-vs-bf16"

H100_BOX = {
    "hostname": "localhost",
    "os": "Linux-6.8.0-x86_64-with-glibc2.39",
    "os_family": "Linux",
    "machine_arch": "x86_64",
    "machine_token": "1234567890abcdef",
    "cpu_model": "AMD EPYC 9654 96-Core Processor",
    "cpu_flags": ["avx", "avx2", "avx512f", "avx512_bf16", "fma"],
    "cpu_physical_cores": 96,
    "cpu_logical_cores": 192,
    "memory_total_bytes": 1024 * 2**30 - 5_000_000,
    "gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 85_520_809_984}],
    "torch": "2.13.0+cu128",
}


def test_same_hardware_another_host_name_same_ids():
    a = machine_record(H100_BOX)
    b = machine_record(dict(H100_BOX, hostname="vm", torch="2.12.0", os="Linux-6.9.1-x86_64"))
    assert (a["hardware_id"], a["machine_id"]) == (b["hardware_id"], b["machine_id"])
    assert "localhost" not in json.dumps(a) and "vm" not in json.dumps(b["fingerprint"])


def test_another_gpu_changes_both_ids():
    a = machine_record(H100_BOX)
    other = dict(H100_BOX, gpus=[{"name": "NVIDIA A100-SXM4-80GB", "memory_bytes": 85_899_345_920}])
    b = machine_record(other)
    assert a["hardware_id"] != b["hardware_id"] and a["machine_id"] != b["machine_id"]
    # a second GPU of the same kind is other hardware too
    two = machine_record(dict(H100_BOX, gpus=H100_BOX["gpus"] * 2))
    assert two["hardware_id"] != a["hardware_id"]


def test_two_machines_of_one_kind_share_hardware_not_machine():
    a = machine_record(H100_BOX)
    b = machine_record(dict(H100_BOX, machine_token="fedcba0987654321"))
    assert a["hardware_id"] == b["hardware_id"] and a["machine_id"] != b["machine_id"]


def test_fingerprint_values_by_hand():
    fp = machine_fingerprint(H100_BOX)
    assert fp == {
        "cpu_model": "AMD EPYC 9654 96-Core Processor",
        "cpu_physical_cores": 96,
        "cpu_logical_cores": 192,
        "simd": "avx512_bf16",
        "memory_gib": 1024,  # 1 TiB less 5 MB: rounded, so a kernel update keeps the id
        "gpus": [["NVIDIA H100 80GB HBM3", 80]],  # 85.5e9 bytes = 79.6 GiB
        "os_family": "Linux",
        "arch": "x86_64",
    }
    # the ids are 12 hex characters of sha256 over the fingerprint's canonical JSON
    canonical = json.dumps(fp, sort_keys=True, separators=(",", ":"))
    assert (
        machine_record(H100_BOX)["hardware_id"]
        == hashlib.sha256(canonical.encode()).hexdigest()[:12]
    )


@pytest.mark.parametrize(
    "flags, expected",
    [
        (
            ["sse4_2", "avx", "avx2", "fma"],
            "avx2",
        ),  # the AVX2 EPYC of results/examples/nanogpt-cpu-recipe
        (["avx2", "avx512f", "avx512_bf16", "avx512_fp16"], "avx512_bf16"),
        (["avx512f", "avx512_bf16", "amx_bf16", "amx_tile"], "amx"),
        (["fp", "asimd", "sve"], "sve"),
        (["fp", "asimd"], "neon"),
        ([], None),
    ],
)
def test_simd_class(flags, expected):
    assert simd_class(flags) == expected


def test_an_older_file_gets_one_derived_from_its_environment():
    run = results.read_run(next(OLD.glob("*.parquet")))
    m = run.info.machine
    assert m.source == "derived from the environment" and m.install is None
    env = run.meta["environment"]
    assert m.fingerprint["cpu_model"] == env["cpu_model"] == "AMD EPYC"
    assert m.fingerprint["simd"] == "avx512_bf16"  # that host had AVX-512 BF16
    assert m.fingerprint["memory_gib"] == round(env["memory_total_bytes"] / 2**30)
    assert m.fingerprint["os_family"] == "Linux" and m.fingerprint["arch"] == "x86_64"


def test_an_imported_log_gets_the_device_name_only():
    path = (
        REPO
        / "results/examples/nanogpt-cpu-recipe/shakespeare_char_cpu-imported-cpu-fp32-d0fc56b9c52b.parquet"
    )
    m = results.read_run(path).info.machine
    assert m.source == "derived from the device name"
    assert m.fingerprint["cpu_model"] == "AMD EPYC" and m.fingerprint["cpu_physical_cores"] is None


def test_a_recorded_fingerprint_is_read_back_and_an_edited_id_refused(tmp_path, handmade):
    path = handmade(tmp_path, "r1", env={"machine_token": "aaaabbbbccccdddd"})
    m = results.read_run(path).info.machine
    assert m.source == "recorded" and m.install == "aaaabbbbccccdddd"
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"nanobench"])
    meta["machine"]["machine_id"] = "0" * 12  # passing one machine's runs off as another's
    pq.write_table(table.replace_schema_metadata({b"nanobench": json.dumps(meta).encode()}), path)
    with pytest.raises(
        InputError, match=r"r1.parquet: .*machine_id.* not those of its fingerprint"
    ):
        results.read_run(path)


def test_install_token_hashes_the_os_machine_id(monkeypatch, tmp_path):
    monkeypatch.setattr(host, "_os_machine_id", lambda: "3d1219c7c4c5404aaa1f6d2a48adfda4")
    expected = hashlib.sha256(
        b"nanobench machine token v1:3d1219c7c4c5404aaa1f6d2a48adfda4"
    ).hexdigest()
    assert host.machine_token() == expected[:16]
    assert "3d1219c7" not in host.machine_token()  # the raw id is never recorded


def test_install_token_without_an_os_id_is_kept_in_the_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(host, "_os_machine_id", lambda: "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = host.machine_token()
    assert len(first) == 16 and host.machine_token() == first
    assert (tmp_path / "nanobench" / "machine-token").read_text().strip() == first
    (tmp_path / "nanobench" / "machine-token").unlink()  # a wiped cache: a new machine to nanobench
    assert host.machine_token() != first
