"""Type stubs for the compiled engine ``kipoi_containers._engine`` (Rust, PyO3)."""

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any, final

__version__: str

def load_json(path: str | PathLike[str]) -> Any:
    """Read a JSON file into dicts/lists (key order kept). The three index files, recognised
    by name, are validated: a problem raises ``IndexFormatError`` naming file, entry, line."""

def save_json(path: str | PathLike[str], obj: Any) -> None:
    """Write ``obj`` atomically, formatted exactly like ``json.dump(obj, f, indent=4)``.
    An index file (recognised by name) must have its shape, else ``IndexFormatError`` and
    nothing is written. I/O failures raise ``IndexIOError`` and leave the old file intact."""

def write_atomic(path: str | PathLike[str], data: bytes) -> None:
    """Replace the file at ``path`` with ``data`` atomically (``FileIOError`` on failure)."""

def dumps_indent4(obj: Any) -> str:
    """``json.dumps(obj, indent=4)``, byte for byte."""

def one_model_per_modelgroup(models: list[str]) -> list[str]:
    """The first model of each top-level model group, in input order."""

def total_number_of_unique_containers(containers: list[str]) -> int:
    """How many distinct names ``containers`` holds."""

@final
class Action:
    """One planned action of a sync."""

    kind: str
    """``remove-group``, ``update-image``, ``retest-shared`` or ``add-group``."""
    unit: str
    """The index key (or new group/model path) the action is about."""
    image: str | None
    """The image the unit uses now; ``None`` for a group new to the index."""
    models: list[str]
    """Models to test at the target commit (for ``remove-group``: the models dropped)."""
    try_images: list[str]
    """Images to try first (``add-group``: the shared images of the index)."""
    reason: str
    paths: list[str]
    """The changed paths that caused the action."""

@final
class Skipped:
    """A changed path that causes no action, and why."""

    path: str
    reason: str

@final
class Plan:
    """What a sync must do, with reasons. Printable before anything is touched."""

    @property
    def zoo(self) -> str: ...
    @property
    def from_commit(self) -> str: ...
    @property
    def to_commit(self) -> str: ...
    @property
    def actions(self) -> list[Action]: ...
    @property
    def skipped(self) -> list[Skipped]: ...
    def is_empty(self) -> bool: ...
    def to_table(self) -> str:
        """A readable table with one line per action and its reason."""
    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready dicts and lists."""
    def __len__(self) -> int: ...

def plan(
    zoo: str,
    from_commit: str,
    container_info: str | PathLike[str],
    to: str | None = None,
    github_api_url: str | None = None,
) -> Plan:
    """Plan a sync of ``zoo`` (a git checkout path or ``github:OWNER/REPO``) from
    ``from_commit`` to ``to`` (default: the default branch's head) against the index in
    ``container_info``. Raises ``ZooError`` (and subclasses) or ``IndexFormatError``."""

def changed_paths(
    zoo: str, from_commit: str, to_commit: str, github_api_url: str | None = None
) -> list[str]:
    """Paths that differ between two commits (tree difference, no merge base)."""

def model_groups(
    zoo: str, commit: str | None = None, github_api_url: str | None = None
) -> list[tuple[str, list[str]]]:
    """Every model group at ``commit`` with its models."""

@final
class Index:
    """The three index files of one ``container-info`` directory, validated, with lookups."""

    @staticmethod
    def load(directory: str | PathLike[str]) -> Index:
        """Load the three files from ``directory``."""
    def save(self, directory: str | PathLike[str]) -> None:
        """Write the three files into ``directory``, each atomically, in upstream's format."""
    def key_for_model(self, model: str) -> str | None:
        """The index key responsible for ``model``: itself, else its longest path-prefix key."""
    def image_for_model(self, model: str) -> str | None:
        """The Docker image that runs ``model``."""
    def models_for_image(self, image: str) -> list[str] | None:
        """The models to test in ``image`` (a ``-slim`` tag uses its full image's list)."""
    def keys_for_image(self, image: str) -> list[str]:
        """The index keys mapped to ``image``."""
    def singularity_for_model(self, model: str) -> dict[str, str] | None:
        """``{url, name, md5}`` of the SIF for ``model``."""
    def shared_images(self) -> list[str]:
        """The shared environments: images whose keys span two or more top-level groups."""
    def is_shared(self, image: str) -> bool:
        """Whether ``image`` (or its full image, for a ``-slim`` tag) is a shared environment."""
    def consistency_problems(self) -> list[str]:
        """Disagreements between the three files, one line each."""
    @property
    def model_to_docker(self) -> dict[str, str]: ...
    @property
    def docker_to_model(self) -> dict[str, list[str]]: ...
    @property
    def model_to_singularity(self) -> dict[str, dict[str, str]]: ...

# ---------------------------------------------------------------- naming rules (src/names.rs)

def image_tag_for_group(group: str) -> str:
    """``MMSplice/mtsplice`` → ``mmsplice-mtsplice``."""

def image_for_group(group: str) -> str:
    """``DeepMEL`` → ``kipoi/kipoi-docker:deepmel`` (a group's own image)."""

def image_tag(image: str) -> str:
    """``kipoi/kipoi-docker:deepmel-slim`` → ``deepmel-slim`` (``latest`` when untagged)."""

def slim_image(image: str) -> str:
    """``repo:tag`` → ``repo:tag-slim`` (unchanged when already slim)."""

def full_image(image: str) -> str:
    """``repo:tag-slim`` → ``repo:tag`` (unchanged when not slim)."""

def sif_name_for_image(image: str) -> str:
    """``kipoi/kipoi-docker:deepmel[-slim]`` → ``kipoi-docker_deepmel-slim``."""

def dockerfile_for_image(dockerfiles_dir: str | PathLike[str], image: str) -> tuple[Path, str]:
    """``(dir/Dockerfile.<tag>[-slim], "full" | "slim")``: one rule for every group."""

def longest_prefix_key(keys: list[str], model: str) -> str | None:
    """The key responsible for ``model``: itself, else the longest ``/``-boundary prefix."""

def shared_images_of(model_to_docker: dict[str, str]) -> list[str]:
    """Images whose keys span two or more top-level model groups (sorted)."""

# ---------------------------------------------------------------- defaults (src/config.rs)

def config_zoo(explicit: str | None = None) -> str:
    """The zoo: ``explicit``, else ``$KIPOI_MODEL_REPO``, else ``github:kipoi/models``."""

def config_test_zoo(explicit: str | PathLike[str] | None = None) -> Path | None:
    """The zoo checkout model tests run against, or ``None`` (``--source=kipoi``)."""

def config_container_info(explicit: str | PathLike[str] | None = None) -> Path:
    """``explicit``, else ``$KIPOI_CONTAINER_INFO``, else ``./container-info``."""

def config_hash_file(explicit: str | PathLike[str] | None = None) -> Path:
    """``explicit``, else ``$KIPOI_MODEL_REPO_HASH``, else ``./kipoi-model-repo-hash``."""

def config_docker_repository(explicit: str | None = None) -> str:
    """``explicit``, else ``$KIPOI_DOCKER_REPO``, else ``kipoi/kipoi-docker``."""

def config_sif_folder(explicit: str | PathLike[str] | None = None, fallback: str | PathLike[str] = ...) -> Path:
    """``explicit``, else ``$SINGULARITY_PULL_FOLDER``, else ``fallback`` (default ``.``)."""

# ---------------------------------------------------------------- Zenodo (src/zenodo/)

from collections.abc import Callable, Mapping  # noqa: E402 (kept beside the Zenodo stubs)

def md5_file(path: str | PathLike[str]) -> str:
    """md5 (lower-case hex) of a file, read in one streaming pass; ``FileIOError`` when the
    file cannot be read."""

def record_id_from_url(url: str) -> int | None:
    """The record id of a Zenodo URL (``…/record/<id>/files/…``, any base prefix; a bare
    number is itself), or ``None``."""

def record_text(
    sif_name: str, model_group: str, index: Mapping[str, Mapping[str, str]] | None = None
) -> tuple[str, str]:
    """``(title, description)`` of the SIF's Zenodo record, decided from ``index``
    (``model-to-singularity``): keys spanning two or more top-level groups → a shared
    environment; several keys of one group → that group except its other keys; otherwise
    ``model_group``'s own."""

def model_group_text(group: str) -> tuple[str, str]:
    """``(title, description)`` of a model group's own record."""

def shared_env_text(env: str) -> tuple[str, str]:
    """``(title, description)`` of a shared conda environment's record."""

def group_except_text(group: str, others: list[str]) -> tuple[str, str]:
    """``(title, description)`` of ``group``'s record when ``others`` have their own images."""

def deposit_metadata(title: str, description: str, publication_date: str | None = None) -> dict[str, Any]:
    """The deposition metadata kipoi stores (``publication_date``: today, UTC, by default)."""

@final
class ZenodoClient:
    """Zenodo REST client. Base URL: ``base_url``, else ``$ZENODO_URL``, else
    https://zenodo.org; token: ``access_token``, else ``$ZENODO_ACCESS_TOKEN``, sent only as
    ``Authorization: Bearer`` to the base URL's origin (never in URLs, logs or errors).
    Retries 429 (honouring ``Retry-After``), 500/502/503/504 and dropped connections with
    exponential backoff. Errors: ``ZenodoError`` / ``ZenodoAuthError`` / ``ChecksumMismatchError``.
    """

    def __new__(
        cls,
        base_url: str | None = None,
        access_token: str | None = None,
        *,
        user_agent: str | None = None,
        max_retries: int = 5,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 300.0,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> ZenodoClient: ...
    @property
    def base_url(self) -> str:
        """The base URL without a trailing slash."""
    @property
    def has_token(self) -> bool:
        """Whether a token is configured (it cannot be read back)."""
    def get(self, url: str, params: list[tuple[str, str]] | None = None) -> Any:
        """``GET url`` → decoded JSON."""
    def put_json(self, url: str, body: Any, params: list[tuple[str, str]] | None = None) -> Any:
        """``PUT url`` with a JSON body → decoded JSON."""
    def post(
        self, url: str, params: list[tuple[str, str]] | None = None, body: Any = None
    ) -> tuple[int, Any]:
        """``POST url`` → ``(status, JSON)``; repeated only when the server certainly did not act."""
    def delete(self, url: str, params: list[tuple[str, str]] | None = None) -> None:
        """``DELETE url``."""
    def upload(
        self,
        url: str,
        path: str | PathLike[str],
        progress: Callable[[int, int], Any] | None = None,
    ) -> dict[str, Any]:
        """Stream ``path`` to a bucket object URL, md5 checked; returns the bucket object."""
    def list_depositions(
        self,
        q: str | None = None,
        status: str | None = None,
        sort: str | None = None,
        page: int | None = None,
        size: int | None = None,
        all_versions: bool | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /api/deposit/depositions`` with search parameters."""
    def create_deposition(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create a new draft deposition."""
    def get_deposition(self, deposition_id: int | str) -> dict[str, Any]:
        """Read a deposition (draft or published)."""
    def new_version(self, deposition_id: int | str) -> int:
        """Open a new-version draft of a published deposition and return its id; an already
        open draft of the same record is found and returned instead of failing."""
    def find_open_draft(self, deposition_id: int | str) -> int | None:
        """The open draft of the record ``deposition_id`` belongs to, if any."""
    def list_files(self, deposition_id: int | str) -> list[dict[str, Any]]:
        """The files of a deposition (``checksum`` is plain md5 hex)."""
    def delete_file(self, deposition_id: int | str, file_id: str) -> None:
        """Delete one file of a draft."""
    def upload_file(
        self,
        bucket_url: str,
        filename: str,
        path: str | PathLike[str],
        progress: Callable[[int, int], Any] | None = None,
    ) -> dict[str, Any]:
        """Stream ``path`` into the draft's bucket as ``filename``; md5 checked."""
    def update_metadata(self, deposition_id: int | str, metadata: dict[str, Any]) -> dict[str, Any]:
        """Replace the metadata of a draft."""
    def publish(self, deposition_id: int | str) -> dict[str, Any]:
        """Publish a draft."""
    def delete_deposition(self, deposition_id: int | str) -> None:
        """Delete a draft."""
    def download(
        self,
        url: str,
        dest: str | PathLike[str],
        md5: str | None = None,
        progress: Callable[[int, int], Any] | None = None,
    ) -> str:
        """Download ``url`` into ``dest`` (redirects followed), md5 checked when given."""
    def publish_new(
        self,
        path: str | PathLike[str],
        file_name: str,
        *,
        model_group: str,
        name: str | None = None,
        index: Mapping[str, Mapping[str, str]] | None = None,
        push: bool = True,
        draft_id: int | str | None = None,
        publication_date: str | None = None,
        progress: Callable[[int, int], Any] | None = None,
        upload: Callable[[str], Any] | None = None,
        on_step: Callable[[str, dict[str, Any]], Any] | None = None,
    ) -> dict[str, Any]:
        """Publish ``path`` as a new record holding it as ``file_name`` (checked to be one safe
        path segment before any request): create (or resume ``draft_id``), upload (md5
        checked; a resumed draft's file with the same md5 is kept), metadata (text from
        ``index`` for the SIF ``name``), and with ``push`` publish and read back. A failure or
        Ctrl-C after the draft exists deletes it. ``upload(object_url)`` replaces the upload;
        ``on_step(event, info)`` hears each completed step. Returns ``{"deposition_id",
        "md5", "published"}`` (``published``: ``{"record_id", "file_id", "url", "name",
        "md5"}``, or ``None`` without ``push``)."""
    def publish_version(
        self,
        record: int | str,
        path: str | PathLike[str],
        file_name: str,
        *,
        model_group: str,
        name: str | None = None,
        index: Mapping[str, Mapping[str, str]] | None = None,
        push: bool = True,
        draft_id: int | str | None = None,
        publication_date: str | None = None,
        progress: Callable[[int, int], Any] | None = None,
        upload: Callable[[str], Any] | None = None,
        on_step: Callable[[str, dict[str, Any]], Any] | None = None,
    ) -> dict[str, Any]:
        """As :meth:`publish_new`, as a new version of ``record`` (an id, or an index entry's
        URL): the record's open draft is continued, and only the file named ``file_name`` is
        replaced."""

# --- Docker Engine path -------------------------------------------------------------

@final
class ModelTestResult:
    """The outcome of one ``kipoi test`` run in a container (truthy when it passed)."""

    model: str
    image: str
    exit_code: int
    passed: bool
    log_tail: str
    """The last lines of the container's output."""
    seconds: float
    def __bool__(self) -> bool: ...

def render_dockerfile(
    model_group: str,
    tag: str,
    variant_name: str = "full",
    output_dir: str | PathLike[str] | None = None,
    template_dir: str | PathLike[str] | None = None,
    base_image: str | None = None,
    build_image: str | None = None,
    slim_base_image: str | None = None,
) -> tuple[Path | None, str, str]:
    """Render a group's Dockerfile (``full`` or ``slim``) from the templates; written to
    ``output_dir/Dockerfile.<tag>[-slim]`` when given. Returns ``(path, text, recipe_hash)``."""

def render_dockerfile_for_image(
    model_group: str,
    image: str,
    dockerfiles_dir: str | PathLike[str],
    template_dir: str | PathLike[str] | None = None,
    base_image: str | None = None,
    container_info: str | PathLike[str] | None = None,
) -> tuple[Path, str, str]:
    """Render the group templates for ``model_group`` as ``image`` (full or slim, from its tag)
    into ``dockerfiles_dir/Dockerfile.<tag>[-slim]``. Raises ``SharedImageError`` naming the
    image when the index (``container_info``, default ``$KIPOI_CONTAINER_INFO`` or
    ``./container-info``) has it as shared: a shared image is built from its environment file
    only (see :func:`recipe_for_image`). Returns ``(path, text, recipe_hash)``."""

# --- Recipes of every image, and the CI matrices ------------------------------------

@final
class ImageRecipe:
    """The recipe of one image, chosen by the index (never by the image's name)."""

    image: str
    """The image's index name (``kipoi/kipoi-docker:<tag>[-slim]``), or the base image."""
    kind: str
    """``base``, ``shared-env`` (from an environment file) or ``group`` (the group templates)."""
    subject: str | None
    """The model group (``group``) or the environment file's stem (``shared-env``)."""
    variant: str
    """``full`` or ``slim``."""
    file_name: str
    """``Dockerfile.<tag>``."""
    text: str
    """The Dockerfile."""
    hash: str
    """sha256 hex of ``text``: the image's recipe label."""
    from_images: list[str]
    """The images it is built from (``FROM``, ``COPY --from=``; build stages left out)."""
    models: list[str]
    """The models it serves (``docker-to-model.json``)."""
    test_models: list[str]
    """What a release tests in it: every model; one per model group for a shared image."""
    @property
    def context(self) -> list[tuple[str, bytes]]:
        """Files its build context needs besides the Dockerfile: ``[(relative path, bytes)]``."""

@final
class RecipeCheckLine:
    """One image of :func:`check_recipes`."""

    image: str
    kind: str
    subject: str | None
    file_name: str
    hash: str
    keys: list[str]
    """Its index keys (the model groups or models it serves)."""
    models: int
    """How many models it serves."""
    dependents: list[str]
    """The images built from it."""

@final
class RecipeCheck:
    """What :func:`check_recipes` found (truthy when there is no problem)."""

    lines: list[RecipeCheckLine]
    problems: list[str]
    def __bool__(self) -> bool: ...

def recipes_for_index(
    container_info: str | PathLike[str] | None = None,
    template_dir: str | PathLike[str] | None = None,
    envfile_dir: str | PathLike[str] | None = None,
    base_image: str | None = None,
    build_image: str | None = None,
    build_order: bool = False,
) -> list[ImageRecipe]:
    """Every recipe of the index: the base, then each image of ``docker-to-model.json``, full
    then slim (in build order with ``build_order``: each image after those it is built from).
    Raises ``RecipeError`` naming an image without a recipe, a cycle, or a ``FROM`` image of
    ours without a recipe."""

def recipe_for_image(
    image: str,
    container_info: str | PathLike[str] | None = None,
    model_group: str | None = None,
    template_dir: str | PathLike[str] | None = None,
    envfile_dir: str | PathLike[str] | None = None,
    base_image: str | None = None,
    build_image: str | None = None,
) -> ImageRecipe:
    """The recipe of ``image``: the index's when it knows the image (a shared image: its
    environment file), else the group templates for ``model_group`` (an image new to the index)."""

def write_image_recipe(
    image: str,
    output_dir: str | PathLike[str],
    container_info: str | PathLike[str] | None = None,
    model_group: str | None = None,
    template_dir: str | PathLike[str] | None = None,
    envfile_dir: str | PathLike[str] | None = None,
    base_image: str | None = None,
    build_image: str | None = None,
) -> tuple[Path, ImageRecipe]:
    """Write :func:`recipe_for_image`'s recipe into ``output_dir`` (``Dockerfile.<tag>`` and its
    context files, ``envfiles/*.yml``), so ``output_dir`` is its build context."""

def write_recipes(
    output_dir: str | PathLike[str],
    container_info: str | PathLike[str] | None = None,
    template_dir: str | PathLike[str] | None = None,
    envfile_dir: str | PathLike[str] | None = None,
    base_image: str | None = None,
    build_image: str | None = None,
) -> list[Path]:
    """Write every recipe of the index into ``output_dir``; returns the files written."""

def check_recipes(
    container_info: str | PathLike[str] | None = None,
    template_dir: str | PathLike[str] | None = None,
    envfile_dir: str | PathLike[str] | None = None,
    base_image: str | None = None,
    build_image: str | None = None,
) -> RecipeCheck:
    """Check that every image of the index (its ``-slim``, the base) has a recipe, that every
    environment file serves an image, and that the recipes have a build order."""

def build_recipe(
    image: str,
    container_info: str | PathLike[str] | None = None,
    model_group: str | None = None,
    template_dir: str | PathLike[str] | None = None,
    envfile_dir: str | PathLike[str] | None = None,
    base_image: str | None = None,
    build_image: str | None = None,
    labels: dict[str, str] | None = None,
    nocache: bool = False,
    zoo_commit: str | None = None,
    docker_host: str | None = None,
) -> str:
    """Build ``image`` from :func:`recipe_for_image`'s recipe; the Dockerfile and the files its
    build context needs (environment files) go to the engine from memory, no checkout needed.
    Labelled with the recipe hash (and ``model_group``, ``zoo_commit``, ``labels``). Returns the
    image id; a failing step raises ``DockerBuildError``."""

def recipe_matrix(
    kind: str,
    container_info: str | PathLike[str] | None = None,
    level: int | None = None,
    max_level: int | None = None,
    template_dir: str | PathLike[str] | None = None,
    envfile_dir: str | PathLike[str] | None = None,
    base_image: str | None = None,
    build_image: str | None = None,
) -> str:
    """The GitHub Actions matrix ``kind`` (``test``, ``release``, ``singularity``) as one line of
    JSON, ``{"include": [...]}``. ``level`` keeps the release entries of that level;
    ``max_level`` raises ``RecipeError`` naming any release entry deeper than it."""

def docker_ping(docker_host: str | None = None) -> str:
    """Check the daemon answers; raises ``DockerUnreachableError``. Returns its address."""

def build_image(
    dockerfile_path: str | PathLike[str],
    image: str,
    context_dir: str | PathLike[str] | None = None,
    labels: dict[str, str] | None = None,
    nocache: bool = False,
    model_group: str | None = None,
    zoo_commit: str | None = None,
    docker_host: str | None = None,
) -> str:
    """Build ``image``; the log streams to logging. ``DockerBuildError`` names the failing
    step. Labels: the recipe hash always, ``model_group`` and ``zoo_commit`` when given."""

async def build_image_async(
    dockerfile_path: str | PathLike[str],
    image: str,
    context_dir: str | PathLike[str] | None = None,
    labels: dict[str, str] | None = None,
    nocache: bool = False,
    model_group: str | None = None,
    zoo_commit: str | None = None,
    docker_host: str | None = None,
) -> str: ...
def test_model(
    image: str,
    model: str,
    zoo_dir: str | PathLike[str] | None = None,
    extra_args: list[str] | None = None,
    timeout: float | None = None,
    check: bool = False,
    network: bool = False,
    docker_host: str | None = None,
) -> ModelTestResult:
    """``kipoi test MODEL`` in a fresh container (always removed). With ``zoo_dir`` the
    checkout is mounted read-only and the test runs offline. ``check`` raises
    ``ModelTestError`` on failure."""

async def test_model_async(
    image: str,
    model: str,
    zoo_dir: str | PathLike[str] | None = None,
    extra_args: list[str] | None = None,
    timeout: float | None = None,
    check: bool = False,
    network: bool = False,
    docker_host: str | None = None,
) -> ModelTestResult: ...
def test_models(
    image: str,
    models: list[str],
    zoo_dir: str | PathLike[str] | None = None,
    concurrency: int | None = None,
    timeout: float | None = None,
    network: bool = False,
    docker_host: str | None = None,
) -> list[ModelTestResult]:
    """Test several models of one image, at most ``concurrency`` at once (default: cores)."""

def push_image(
    image: str,
    repository: str | None = None,
    tag: str | None = None,
    username: str | None = None,
    password: str | None = None,
    docker_host: str | None = None,
) -> tuple[str, str]:
    """Push ``image`` as ``repository:tag``; returns ``(reference, digest)``."""

async def push_image_async(
    image: str,
    repository: str | None = None,
    tag: str | None = None,
    username: str | None = None,
    password: str | None = None,
    docker_host: str | None = None,
) -> tuple[str, str]: ...
def docker_cleanup(images: bool = False, docker_host: str | None = None) -> dict[str, list[str]]:
    """Remove what this tool created (label filter); ``images``: its dangling images too."""

def export_image(image: str, path: str | PathLike[str], docker_host: str | None = None) -> int:
    """Write ``image`` as a ``docker save`` tar to ``path``; returns the bytes written."""

def registry_image(
    reference: str, username: str | None = None, password: str | None = None
) -> tuple[str, dict[str, str]] | None:
    """``(digest, labels)`` of an image in its registry, read without pulling; ``None`` when absent."""

def pull_image(
    reference: str,
    username: str | None = None,
    password: str | None = None,
    docker_host: str | None = None,
) -> str:
    """Pull ``reference`` (``repo:tag`` or ``repo@sha256:…``); returns the local image id."""

def ensure_image(image: str, repository: str | None = None, docker_host: str | None = None) -> str:
    """Make the index image ``image`` present locally (pulled from ``repository``, default
    ``$KIPOI_DOCKER_REPO``, when it is not); returns its id."""

def model_test_args(model: str) -> list[str]:
    """Extra ``kipoi test`` arguments for ``model`` from the per-model table."""

def resolve_revision(zoo: str, rev: str | None = None, github_api_url: str | None = None) -> str:
    """The full sha of ``rev`` (default: the branch head) in ``zoo``."""

def models_of_group(
    zoo: str, group: str, commit: str | None = None, github_api_url: str | None = None
) -> list[str]:
    """The models of one group at ``commit`` (default: the branch head)."""

def sif_convert(
    image: str,
    out: str | PathLike[str],
    model_group: str | None = None,
    zoo_commit: str | None = None,
    source_date_epoch: int | None = None,
    threads: int | None = None,
    level: int | None = None,
    docker_host: str | None = None,
) -> dict[str, Any]:
    """Convert ``image`` from the Docker Engine to the SIF ``out`` natively (no apptainer);
    deterministic for the same image and arguments. Returns the report (``md5``, ``size``,
    ``partition_offset``, ``uuid``, ``source_digest``, ``seconds``, ...). Raises ``SifError``."""

def sif_inspect(path: str | PathLike[str]) -> dict[str, Any]:
    """Header (``uuid``, ``arch``, ``ctime``, ``size``, descriptor and data extents), the
    descriptor table (``objects``: dicts with ``id``, ``type``, ``name``, ``offset``,
    ``size``, ``group``, ``link``, and ``fstype``/``parttype``/``arch`` for partitions),
    ``deffile`` and ``labels`` (source image, digest, model group, zoo commit) of a SIF."""

def sif_verify(path: str | PathLike[str]) -> None:
    """Validate a SIF's header, descriptors and partition layout; raises ``SifError``."""

# ---------------------------------------------------------------- zoo write-back (src/zoo/writeback.rs)
# ``zoo``: ``OWNER/REPO``, ``github:OWNER/REPO`` or the path of a git checkout. GitHub uses
# ``github_api_url`` (else ``$GITHUB_API_URL``, else https://api.github.com) and the token in
# ``$GITHUB_PAT`` / ``$GITHUB_TOKEN`` (required for writes).

def zoo_branch_exists(zoo: str, branch: str = "update-json", github_api_url: str | None = None) -> bool:
    """Whether ``branch`` exists in ``zoo``."""

def zoo_read_json(
    zoo: str, path: str, branch: str = "update-json", github_api_url: str | None = None
) -> Any:
    """The JSON file ``path`` from ``branch`` when it exists, else from the default branch
    (a local checkout: the branch checked out)."""

def zoo_write_json(
    zoo: str,
    files: dict[str, dict[str, Any]],
    *,
    branch: str = "update-json",
    open_pr: bool = True,
    github_api_url: str | None = None,
) -> dict[str, Any]:
    """Make each ``{path: object}`` of ``files`` hold its object on ``branch`` (created from
    the default branch's head when missing), merging with concurrent writers' other keys
    and committing only what changes; on GitHub with ``open_pr``, open or find the pull
    request. Returns ``{zoo, branch, branch_created, files: [{path, outcome, commit?}],
    pull_request: {number, url, created} | None, changed}``."""

def zoo_open_pull_request(
    zoo: str, branch: str = "update-json", github_api_url: str | None = None
) -> dict[str, Any] | None:
    """Open the pull request "Update container jsons" from ``branch`` to the default branch,
    or return the one already open (``{number, url, created}``); ``None`` for a local zoo or
    when ``branch`` holds nothing new."""

# ---------------------------------------------------------------- the sync (src/sync/)

@final
class SyncReport:
    """What a sync did: one row per unit, the index, the zoo's write-back, the hash."""

    @property
    def failed(self) -> int:
        """Units that failed."""
    @property
    def hash_moved(self) -> bool:
        """``kipoi-model-repo-hash`` now holds the zoo commit synced to."""
    @property
    def index_written(self) -> bool: ...
    @property
    def write_back(self) -> str | None:
        """What the zoo received (branch, commits, pull request), in words."""
    @property
    def to(self) -> str: ...
    @property
    def rows(self) -> list[dict[str, Any]]:
        """unit, action, result (``ok``/``failed``), detail, image, digest, sif_md5, seconds, error, log_tail."""
    def to_table(self) -> str:
        """The table headed ``Sync summary``."""
    def to_dict(self) -> dict[str, Any]: ...

def sync(
    *,
    zoo: str | None = None,
    from_commit: str | None = None,
    to: str | None = None,
    container_info: str | PathLike[str] | None = None,
    hash_file: str | PathLike[str] | None = None,
    registry: str | None = None,
    base_image: str | None = None,
    build_image: str | None = None,
    templates: str | PathLike[str] | None = None,
    envfiles: str | PathLike[str] | None = None,
    zenodo_url: str | None = None,
    github_api_url: str | None = None,
    only: list[str] | None = None,
    push: bool = True,
    concurrency: int | None = None,
    journal: str | PathLike[str] | None = None,
    restart: bool = False,
    dockerfiles_dir: str | PathLike[str] | None = None,
    test_zoo: str | PathLike[str] | None = None,
    docker_host: str | None = None,
    test_timeout: float | None = None,
) -> SyncReport:
    """Sync the containers with the zoo: build, test, push, convert, publish, write back,
    move the hash (only when everything succeeded). Crash-safe: re-run to resume."""

async def sync_async(
    *,
    zoo: str | None = None,
    from_commit: str | None = None,
    to: str | None = None,
    container_info: str | PathLike[str] | None = None,
    hash_file: str | PathLike[str] | None = None,
    registry: str | None = None,
    base_image: str | None = None,
    build_image: str | None = None,
    templates: str | PathLike[str] | None = None,
    envfiles: str | PathLike[str] | None = None,
    zenodo_url: str | None = None,
    github_api_url: str | None = None,
    only: list[str] | None = None,
    push: bool = True,
    concurrency: int | None = None,
    journal: str | PathLike[str] | None = None,
    restart: bool = False,
    dockerfiles_dir: str | PathLike[str] | None = None,
    test_zoo: str | PathLike[str] | None = None,
    docker_host: str | None = None,
    test_timeout: float | None = None,
) -> SyncReport:
    """Awaitable :func:`sync`."""

def sync_plan(
    *,
    zoo: str | None = None,
    from_commit: str | None = None,
    to: str | None = None,
    container_info: str | PathLike[str] | None = None,
    hash_file: str | PathLike[str] | None = None,
    github_api_url: str | None = None,
    only: list[str] | None = None,
) -> Plan:
    """The plan of a sync (touches nothing), defaults from the environment."""

def release(
    *,
    fragment: str | PathLike[str] | None = None,
    zoo: str | None = None,
    container_info: str | PathLike[str] | None = None,
    hash_file: str | PathLike[str] | None = None,
    registry: str | None = None,
    base_image: str | None = None,
    build_image: str | None = None,
    templates: str | PathLike[str] | None = None,
    envfiles: str | PathLike[str] | None = None,
    zenodo_url: str | None = None,
    github_api_url: str | None = None,
    only: list[str] | None = None,
    push: bool = True,
    concurrency: int | None = None,
    journal: str | PathLike[str] | None = None,
    restart: bool = False,
    dockerfiles_dir: str | PathLike[str] | None = None,
    test_zoo: str | PathLike[str] | None = None,
    docker_host: str | None = None,
    test_timeout: float | None = None,
) -> SyncReport:
    """Rebuild every image (``only``: these images) from its recipe in dependency order:
    test, push, convert, publish a new SIF version where its md5 changed; update the index
    and write it back to the zoo, or (``fragment``) write this shard's results to that file.
    An image rebuilt from the same recipe and parents is not rebuilt. Journaled in
    ``journal`` (default ``./.kipoi-release``): re-run to resume."""

def release_plan(
    *,
    container_info: str | PathLike[str] | None = None,
    only: list[str] | None = None,
    base_image: str | None = None,
    build_image: str | None = None,
    templates: str | PathLike[str] | None = None,
    envfiles: str | PathLike[str] | None = None,
) -> list[list[dict[str, Any]]]:
    """The images a release rebuilds, level by level (touches nothing): ``image``,
    ``with_slim``, ``parents`` (our images it is built FROM), ``external`` (the others),
    ``keys``, ``models``, ``test_models``, ``level`` (in the whole release)."""

def merge_results(
    directory: str | PathLike[str],
    *,
    zoo: str | None = None,
    container_info: str | PathLike[str] | None = None,
    github_api_url: str | None = None,
    push: bool = True,
) -> SyncReport:
    """Apply the result fragments (``directory/*.json``) of a sharded release to the index in
    a deterministic order and (``push``) write it back to the zoo; a failed shard's images
    keep their entries."""

def stored_hash(hash_file: str | PathLike[str] | None = None) -> str:
    """The zoo commit in ``kipoi-model-repo-hash`` (``$KIPOI_MODEL_REPO_HASH``)."""

def sif_run(
    path: str | PathLike[str],
    command: Sequence[str],
    binds: Sequence[tuple[str | PathLike[str], str]] | None = None,
    isolate_network: bool = False,
    workdir: str | None = None,
    env: Sequence[tuple[str, str]] | None = None,
    timeout: float | None = None,
    capture: bool = True,
    runner: str | None = None,
) -> dict[str, Any]:
    """Run ``command`` inside the SIF: with apptainer/singularity when on PATH, else
    squashfuse + bwrap (``runner``, or ``$KIPOI_SIF_RUNNER``, forces one). ``binds`` are
    read-only ``(host path, path inside)`` pairs. Always unmounted afterwards, also on
    Ctrl-C. Returns ``exit_code`` (-1 when killed for ``timeout``), ``timed_out``, ``tail``
    (the last output lines when ``capture``), ``runner``, ``seconds``."""

def sif_test_model(
    path: str | PathLike[str],
    model: str,
    zoo_dir: str | PathLike[str] | None = None,
    extra_args: Sequence[str] | None = None,
    timeout: float | None = None,
    check: bool = False,
    network: bool = False,
    runner: str | None = None,
) -> ModelTestResult:
    """``kipoi test MODEL`` inside the SIF: ``--source=dir`` against ``zoo_dir`` (bound
    read-only, no network unless ``network``), else upstream's ``--source=kipoi``. A failed
    test raises ``SifTestError`` with ``check``, else is a result with ``passed=False``."""

def sif_test_models(
    path: str | PathLike[str],
    models: Sequence[str],
    zoo_dir: str | PathLike[str] | None = None,
    concurrency: int | None = None,
    timeout: float | None = None,
    network: bool = False,
) -> list[ModelTestResult]:
    """Test several models in the SIF, at most ``concurrency`` at a time; input order."""

def sif_download(url: str, dest: str | PathLike[str], md5: str | None = None) -> dict[str, Any]:
    """Download ``url`` to ``dest`` through ``<dest>.part``: resumes a partial file, retries
    a broken connection with HTTP Range, checks ``md5`` while writing (a mismatch keeps
    nothing: ``ChecksumMismatchError``), renames atomically. Returns ``md5``, ``bytes``,
    ``resumed_from``, ``range_requests``, ``already_present``."""
