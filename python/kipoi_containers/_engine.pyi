"""Type stubs for the compiled engine ``kipoi_containers._engine`` (Rust, PyO3)."""

from os import PathLike
from typing import Any, Optional, final

__version__: str

def load_json(path: str | PathLike[str]) -> Any:
    """Read a JSON file into dicts/lists (key order kept). The three index files, recognised
    by name, are validated: a problem raises ``IndexFormatError`` naming file, entry, line."""

def save_json(path: str | PathLike[str], obj: Any) -> None:
    """Write ``obj`` atomically, formatted exactly like ``json.dump(obj, f, indent=4)``.
    An index file (recognised by name) must have its shape, else ``IndexFormatError`` and
    nothing is written. I/O failures raise ``IndexIOError`` and leave the old file intact."""

def dumps_indent4(obj: Any) -> str:
    """``json.dumps(obj, indent=4)``, byte for byte."""

def one_model_per_modelgroup(models: list[str]) -> list[str]:
    """The first model of each top-level model group, in input order."""

def total_number_of_unique_containers(containers: list[str]) -> int:
    """How many distinct names ``containers`` holds."""

@final
class Index:
    """The three index files of one ``container-info`` directory, validated, with lookups."""

    @staticmethod
    def load(directory: str | PathLike[str]) -> Index:
        """Load the three files from ``directory``."""
    def save(self, directory: str | PathLike[str]) -> None:
        """Write the three files into ``directory``, each atomically, in upstream's format."""
    def key_for_model(self, model: str) -> Optional[str]:
        """The index key responsible for ``model``: itself, else its longest path-prefix key."""
    def image_for_model(self, model: str) -> Optional[str]:
        """The Docker image that runs ``model``."""
    def models_for_image(self, image: str) -> Optional[list[str]]:
        """The models to test in ``image`` (a ``-slim`` tag uses its full image's list)."""
    def keys_for_image(self, image: str) -> list[str]:
        """The index keys mapped to ``image``."""
    def singularity_for_model(self, model: str) -> Optional[dict[str, str]]:
        """``{url, name, md5}`` of the SIF for ``model``."""
    def shared_images(self) -> list[str]:
        """Images used by more than one index key."""
    def consistency_problems(self) -> list[str]:
        """Disagreements between the three files, one line each."""
    @property
    def model_to_docker(self) -> dict[str, str]: ...
    @property
    def docker_to_model(self) -> dict[str, list[str]]: ...
    @property
    def model_to_singularity(self) -> dict[str, dict[str, str]]: ...
