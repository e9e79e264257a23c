"""Make the embedded local default zoo for `make run-local`: a git repository built from
the real kipoi/models metadata (../shared/fixtures) with a base commit and one more commit
changing a few model groups and non-model files. Prints the base commit's sha.

    python scripts/local_zoo.py .local/zoo
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.zoo_repo import METADATA, ZooRepo  # noqa: E402


def main() -> int:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".local/zoo")
    if not METADATA.is_dir():
        print(f"error: the zoo metadata `{METADATA}` is missing; it comes with ../shared beside this checkout", file=sys.stderr)
        return 1
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    zoo = ZooRepo.from_metadata(target, exclude=["BPNet_Dmel_OreR_2to3hr_ZDTBCG"])
    base = zoo.head()
    zoo.append("HAL/model.yaml", "\n# demo: a group on a shared image changed\n")
    zoo.append("MMSplice/mtsplice/model.yaml", "\n# demo: a model with its own image changed\n")
    zoo.copy_group_from_metadata("BPNet_Dmel_OreR_2to3hr_ZDTBCG")
    zoo.remove("DeepSTARR")
    zoo.append("README.md", "demo\n")
    print(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
