"""The UOIS half of the development data: a systemdata.json export, reproducible per seed.

One JSON object whose keys are tables (users, groups, memberships, externalids,
externalidtypes, plus unrelated ones a real export carries), as the UOIS contract shows.
"""

from __future__ import annotations

import random
import unicodedata
import uuid

SYSTEMDATA_TABLES = ["users", "groups", "memberships", "externalids", "externalidtypes",
                     "grouptypes"]


FIRST = ["Jan", "Petr", "Pavel", "Tomáš", "Martin", "Jana", "Eva", "Lucie", "Hana", "Kateřina",
         "Jiří", "Lenka", "Ondřej", "Veronika", "Michal", "Tereza", "Zdeněk", "Markéta"]
LAST = ["Novák", "Svoboda", "Novotný", "Dvořák", "Černý", "Procházka", "Kučera", "Veselý",
        "Horák", "Němec", "Marek", "Pokorný", "Růžička", "Beneš", "Fiala", "Šťastný"]


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def systemdata(rng: random.Random, scale: float) -> dict:
    """The UOIS export: users, groups, memberships, external ids, and tables the import
    ignores. Dirt: a few emails typed by hand, one external id exported twice."""
    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    grouptypes = [{"id": uid(), "name": n, "name_en": e} for n, e in [
        ("univerzita", "university"), ("fakulta", "faculty"), ("katedra", "department"),
        ("studijní skupina", "study group"), ("oddělení", "office")]]
    n_groups = max(6, round(30 * scale))
    groups = [{"id": uid(), "name": "Univerzita", "name_en": "University", "valid": True,
               "grouptype_id": grouptypes[0]["id"], "mastergroup_id": None}]
    levels = [[groups[0]], [], [], []]  # university, faculties, departments, study groups
    for i in range(1, n_groups):
        kind = 1 if i <= max(2, n_groups // 10) else (2 if i <= n_groups // 2 else 3)
        group = {"id": uid(), "name": f"{['', 'Fakulta', 'Katedra', 'Skupina'][kind]} {i}",
                 "name_en": f"{grouptypes[kind]['name_en']} {i}", "valid": rng.random() > 0.05,
                 "grouptype_id": grouptypes[kind]["id"],
                 "mastergroup_id": rng.choice(levels[kind - 1] or levels[0])["id"]}
        groups.append(group)
        levels[kind].append(group)
    users, seen = [], {}
    for _ in range(max(10, round(300 * scale))):
        name, surname = rng.choice(FIRST), rng.choice(LAST)
        stem = f"{_ascii(name)}.{_ascii(surname)}"
        seen[stem] = seen.get(stem, 0) + 1
        email = f"{stem}{seen[stem] if seen[stem] > 1 else ''}@world.com"
        if rng.random() < 0.03:  # typed by hand: capitals, stray blanks
            email = f" {email.capitalize()} "
        users.append({"id": uid(), "name": name, "surname": surname, "email": email,
                      "valid": True})
    memberships = [{"id": uid(), "user_id": u["id"], "group_id": groups[g]["id"],
                    "valid": rng.random() > 0.05, "startdate": "2023-09-01T00:00:00",
                    "enddate": None}
                   for u in users for g in rng.sample(range(1, n_groups), rng.randint(1, 3))]
    category = uid()
    types = [{"id": uid(), "name": n, "name_en": e, "urlformat": f, "category_id": category}
             for n, e, f in [("UČO", "personal number", "https://is.example.cz/osoba/%s"),
                             ("Moodle", "Moodle id", "https://moodle.example.cz/user/%s"),
                             ("ORCID", "ORCID", "https://orcid.org/%s")]]
    numbers = rng.sample(range(100000, 100000 + 10 * len(users)), len(users))
    externalids = []
    for user, k in zip(users, numbers, strict=True):
        outer = [str(k), f"m{k - 40000}", f"0000-0002-{k % 10000:04d}-{k // 10000:04d}"]
        for t, share in enumerate((1.0, 0.6, 0.2)):
            if rng.random() < share:
                externalids.append({"id": uid(), "inner_id": user["id"], "outer_id": outer[t],
                                    "typeid_id": types[t]["id"]})
    externalids.insert(len(externalids) // 2, dict(externalids[0]))  # exported twice
    roletypes = [{"id": uid(), "name": n}
                 for n in ("rektor", "děkan", "vedoucí katedry", "garant", "tajemník")]
    roles = [{"id": uid(), "user_id": rng.choice(users)["id"], "group_id": rng.choice(groups)["id"],
              "roletype_id": rng.choice(roletypes)["id"], "valid": True}
             for _ in range(max(5, round(20 * scale)))]
    return {"grouptypes": grouptypes, "groups": groups, "users": users, "memberships": memberships,
            "externalidcategories": [{"id": category, "name": "osobní identifikátory"}],
            "externalidtypes": types, "externalids": externalids, "roletypes": roletypes,
            "roles": roles, "eventtypes": []}
