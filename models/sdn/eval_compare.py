"""Side-by-side markdown table of eval.py JSON files (worst key / mean over keys), with the targets.

  python models/sdn/eval_compare.py models/sdn/eval_sdn-0.5.0_fast.json models/sdn/eval_sdn-0.6.0.json
"""
import json
import sys

ROWS = [  # (label, path in the JSON, kind, target)
    ("anonymized judged the original", "per_key.anon_same_person", "pct", "<= 1%"),
    ("rank-1 re-identification of the surrogate", "per_key.anon_rank1_reid", "pct", ""),
    ("still a face: dlib HOG at the face box", "per_key.dlib_face_found", "pct", ">= 95%"),
    ("still a face: dlib HOG anywhere", "per_key.dlib_any_face", "pct", ""),
    ("still a face: CenterFace", "per_key.centerface_found", "pct", ">= 98%"),
    ("two keys, two identities", "per_key.two_keys_two_ids", "pct", ">= 95%"),
    ("two people under one key stay two", "per_key.two_people_two_ids", "pct", ">= 95%"),
    ("wrong key judged the original", "per_key.wrong_key_same_as_orig", "pct", "<= 1%"),
    ("wrong key differs from the surrogate", "per_key.wrong_key_differs_from_surrogate", "pct", ">= 95%"),
    ("restore PSNR, PNG (dB)", "per_key.restore_psnr_png", "db", ">= 35"),
    ("restore PSNR, JPEG q75 (dB)", "per_key.restore_psnr_jpeg75", "db", ">= 28"),
    ("restore PSNR, box jittered (dB)", "per_key.restore_psnr_jitter", "db", ""),
    ("restore PSNR, JPEG q75 + jitter (dB)", "per_key.restore_psnr_jpeg75_jitter", "db", ""),
    ("face pixels outside the skin gamut", "per_key.out_of_gamut", "pct2", "<= 1%"),
    ("KID x1000 (soft originals in the target column)", "realism.surrogates_kid_x1000", "num", "realism.soft_originals_kid_x1000"),
    ("FID (soft originals in the target column)", "realism.surrogates_fid", "num", "realism.soft_originals_fid"),
]


def get(d, path):
    for p in path.split("."):
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def fmt(v, kind):
    if v is None:
        return "-"
    if kind == "pct":
        return f"{100 * v:.1f}%"
    if kind == "pct2":
        return f"{100 * v:.2f}%"
    if kind == "db":
        return f"{v:.2f}"
    return f"{v:.1f}"


def main():
    runs = [json.load(open(p)) for p in sys.argv[1:]]
    head = "| target | " + " | ".join(f"{r['model_id']} {r['variant']}: worst key / mean" for r in runs) + " | goal |"
    print(head)
    print("|" + " --- |" * (len(runs) + 2))
    for label, path, kind, target in ROWS:
        cells = []
        for r in runs:
            s = get(r, path)
            cells.append("-" if s is None else f"{fmt(s['worst'], kind)} / {fmt(s['mean'], kind)}")
        if target.startswith("realism."):
            target = "<= " + " / ".join(fmt(get(r, target), kind) for r in runs)
        print(f"| {label} | " + " | ".join(cells) + f" | {target} |")
    for label, key in (("averaging 16 keys judged the original", "attacks.average_16_keys_judged_original"),
                       ("averaging 64 keys judged the original", "attacks.average_64_keys_judged_original"),
                       ("surrogate itself (same faces, worst key)", "attacks.surrogate_itself_judged_original_worst_key")):
        print(f"| {label} | " + " | ".join(fmt(get(r, key), "pct") for r in runs) + " | <= surrogate |")
    for name in ("negate", "scale_0.5", "scale_2", "scale_-0.5", "detail_x1/alpha", "negate_detail_x1/alpha"):
        cells = []
        for r in runs:
            s = (get(r, "attacks.facespace_per_key") or {}).get(name)
            cells.append("skipped" if s is None else f"{fmt(s['worst'], 'pct')} / {fmt(s['mean'], 'pct')}")
        print(f"| identity coordinates {name}, judged the original | " + " | ".join(cells) + " | <= surrogate |")
    print("| flicker ratio surrogate/original (worst track) | " + " | ".join(
        "-" if get(r, "flicker.ratio_of_means") is None else f"{get(r, 'flicker.ratio_of_means'):.2f} ({get(r, 'flicker.ratio_worst_track'):.2f})"
        for r in runs) + " | <= 1 |")
    print()
    for r in runs:
        print(f"- {r['model_id']} {r['variant']}: `{r['command']}` ({r['date_utc']}, {r['machine']}, {r.get('eval_seconds')} s)")


if __name__ == "__main__":
    main()
