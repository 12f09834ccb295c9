#!/usr/bin/env python3
"""Writes the import benchmark's data: an ONSPD-style postcode directory and a contacts list.

usage: generate.py DIR [POSTCODES] [CONTACTS] [TOPIC]
The directory has ONSPD's column names (pcd, pcd2, pcds, ..., pcon, ...) and its width, about
2.7 million rows by default; the contacts list has every column canvass reads, one million rows
by default. Given a TOPIC, every contact consents to it (a campaign on it reaches them all). The data is deterministic (fixed seed) so runs compare.
"""
import csv
import os
import random
import sys

UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
AREAS = ["AL", "CB", "CM", "EN", "HP", "LU", "SG", "WD"]
# Names as a party's list has them, for the substring search (drawn apart from the contacts'
# other values, which stay as they were).
FIRST = ["Amira", "Ben", "Cara", "Dev", "Ella", "Femi", "Grace", "Harry", "Isla", "Jack",
         "Kofi", "Leah", "Mohammed", "Nia", "Oliver", "Priya", "Quinn", "Ruth", "Sam", "Tariq",
         "Una", "Vikram", "Wendy", "Xander", "Yusuf", "Zara", "Siobhan", "Declan", "Aisha",
         "Joanne", "Gareth", "Morag", "Ewan", "Bronwen", "Callum", "Niamh", "Rhys", "Fiona"]
LAST = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
        "Patel", "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts",
        "Green", "Hall", "Wood", "Jackson", "Clarke", "Khan", "Okafor", "Hassan", "Doyle",
        "O'Brien", "MacLeod", "Ashworth", "Pennington", "Featherstonehaugh", "Nowak",
        "Kowalski", "Murphy", "Kelly", "Campbell", "Stewart", "Hughes", "Edwards", "Lloyd"]


def postcodes(count):
    made = 0
    for area in AREAS:
        for district in range(1, 100):
            for sector in range(10):
                for a in UNIT_LETTERS:
                    for b in UNIT_LETTERS:
                        if made == count:
                            return
                        made += 1
                        yield f"{area}{district}", f"{sector}{a}{b}"


def main():
    out = sys.argv[1]
    n_postcodes = int(sys.argv[2]) if len(sys.argv) > 2 else 2_700_000
    n_contacts = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    everyone = sys.argv[4] if len(sys.argv) > 4 else None
    os.makedirs(out, exist_ok=True)
    rng = random.Random(20261123)
    names = random.Random(26)
    # Each postcode district somewhere in England and Wales, its postcodes within a few miles
    # of each other (the ONSPD's lat and long), for the distance rule.
    places = random.Random(27)
    centres = {}
    sample = []
    with open(os.path.join(out, "onspd.csv"), "w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL)
        w.writerow(["pcd", "pcd2", "pcds", "dointr", "doterm", "oscty", "ced", "oslaua",
                    "osward", "parish", "usertype", "oseast1m", "osnrth1m", "osgrdind",
                    "ctry", "rgn", "pcon", "eer", "ttwa", "lat", "long", "imd"])
        for i, (outward, inward) in enumerate(postcodes(n_postcodes)):
            pcds = f"{outward} {inward}"
            if outward not in centres:
                centres[outward] = (places.uniform(50.8, 53.6), places.uniform(-3.2, 0.6))
            lat, lon = centres[outward]
            lat += places.uniform(-0.04, 0.04)
            lon += places.uniform(-0.06, 0.06)
            pcon = f"E14{1000 + i // 4200:06d}"
            w.writerow([f"{outward:<4}{inward}", f"{outward:<4} {inward}", pcds, "198001", "",
                        "E10000015", "E58000001", "E07000242", "E05012345", "E04012345", "0",
                        "533000", "213000", "1", "E92000001", "E12000006", pcon, "E15000006",
                        "E30000234", f"{lat:.6f}", f"{lon:.6f}", "12345"])
            if i % 2 == 0 and len(sample) < 200_000:
                sample.append(pcds)
    topics = ["news", "campaigns", "events", "volunteering"]
    with open(os.path.join(out, "contacts.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["email", "name", "postcode", "date_of_birth", "guardian_consent", "topics",
                    "consent_at", "consent_source"])
        for i in range(n_contacts):
            chosen = [t for t in topics if rng.random() < 0.4] or ["news"]
            if everyone and everyone not in chosen:
                chosen.append(everyone)
            name = f"{names.choice(FIRST)} {names.choice(LAST)}"
            w.writerow([f"person{i}@example.org", name, rng.choice(sample),
                        f"{rng.randint(1940, 2010)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                        "", ";".join(chosen), "2026-10-01T12:00:00Z", "benchmark"])


if __name__ == "__main__":
    main()
