"""Static checks of the multi-stage Dockerfile (no Docker engine runs on the development machines):
targets exist, each runs as a non-root user with a HEALTHCHECK and a real ``kdran`` subcommand as
ENTRYPOINT, torch is only in the distill target, versions are pinned, the xApp keeps the O-RAN SC
environment conventions, and a read-only root filesystem suffices.

Parsing is dockerfile-parse's (continuation lines, comments, ARG substitution in FROM); stages and
the graph between them (FROM <stage>, COPY --from=<stage>) are built on top of its structure.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from deploy_support import REPO
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

TARGETS = ("xapp", "dapp", "distill")
TORCH_FREE_TARGETS = ("xapp", "dapp")
CONSTRAINTS = "deploy/constraints.txt"
IMAGE_EXTRAS = ("dapp", "xapp", "distill")


def known_kdran_commands() -> set[tuple[str, str]]:
    """``(command, subcommand)`` pairs the images may run.

    Until every component registers its CLI this is the agreed list; once they all do, replace the
    body with the parser's view (one line), e.g. walking ``kdran.cli.build_parser()``'s subparsers.
    """
    return {("xapp", "run"), ("dapp", "serve"), ("job", "run")}


@dataclass
class Stage:
    """One FROM block: its name, base (an image or an earlier stage) and instructions."""

    index: int
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        """Values of every ``instruction`` (upper-case) in this stage, in order."""
        return [value for name, value in self.instructions if name == instruction]

    def arg_defaults(self) -> dict[str, str]:
        """Build arguments declared in this stage with their default values."""
        return dict(value.partition("=")[::2] for value in self.values("ARG"))

    def expand(self, text: str) -> str:
        """``text`` with ``${ARG}`` references replaced by this stage's ARG defaults."""
        defaults = self.arg_defaults()
        return re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), text)

    def copy_sources(self) -> set[str]:
        """Stages this one copies from (COPY --from=<stage>)."""
        return {m.group(1) for value in self.values("COPY")
                for m in [re.match(r"--from=(\S+)", value)] if m}


def parse_stages(path: Path = REPO / "Dockerfile") -> dict[str, Stage]:
    """Stages by name (unnamed ones by index), FROM images resolved against ARG defaults."""
    parser = DockerfileParser(str(path))
    bases = parser.parent_images
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for instruction in parser.structure:
        name, value = instruction["instruction"], instruction["value"]
        if name == "FROM":
            words = value.split()
            index = len(stages)
            label = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(index)
            current = Stage(index, label, bases[index])
            stages[label] = current
        elif current is not None and name != "COMMENT":
            current.instructions.append((name, value))
    return stages


def ancestry(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The target and every stage it builds on or copies from, transitively."""
    seen: dict[str, Stage] = {}
    pending = [target]
    while pending:
        name = pending.pop()
        if name in seen or name not in stages:
            continue
        stage = stages[name]
        seen[name] = stage
        pending.append(stage.base)
        pending.extend(stage.copy_sources())
    return sorted(seen.values(), key=lambda s: s.index)


def from_chain(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The target and its FROM parents (whose USER, ENV, ENTRYPOINT it inherits), last first."""
    chain = []
    name = target
    while name in stages:
        chain.append(stages[name])
        name = stages[name].base
    return chain


def inherited(stages: dict[str, Stage], target: str, instruction: str) -> str | None:
    """The effective (last) value of ``instruction`` for ``target``, following FROM parents."""
    for stage in from_chain(stages, target):
        values = stage.values(instruction)
        if values:
            return values[-1]
    return None


def exec_form(value: str) -> list[str]:
    """A JSON exec-form argument list; shell form is refused (signals would not reach kdran)."""
    words = json.loads(value)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), value
    return words


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a RUN line (split at ``&&``, ``||``, ``;``, ``|``), as words."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in {"&&", "||", ";", "|"}:
            commands.append([])
        else:
            commands[-1].append(token)
    return [words for words in commands if words]


def env_of(stages: dict[str, Stage], target: str) -> dict[str, str]:
    """ENV variables the target sees (later stages override earlier ones)."""
    env: dict[str, str] = {}
    for stage in reversed(from_chain(stages, target)):
        for value in stage.values("ENV"):
            for pair in shlex.split(value):
                key, _, val = pair.partition("=")
                env[key] = val
    return env


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return parse_stages()


def test_targets_exist(stages: dict[str, Stage]) -> None:
    assert set(TARGETS) <= set(stages)


@pytest.mark.parametrize("target", TARGETS)
def test_runs_as_a_created_non_root_user(stages: dict[str, Stage], target: str) -> None:
    user = inherited(stages, target, "USER")
    assert user is not None, f"{target} has no USER: it would run as root"
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"{target}: USER {user} must be a numeric non-root uid"
    assert gid == "" or (gid.isdigit() and int(gid) != 0)
    created = [run for stage in from_chain(stages, target) for run in stage.values("RUN")
               if "useradd" in run and f"--uid {uid}" in run]
    assert created, f"{target}: no useradd creates uid {uid}"


@pytest.mark.parametrize("target", TARGETS)
def test_entrypoint_is_a_kdran_subcommand(stages: dict[str, Stage], target: str) -> None:
    entrypoint = inherited(stages, target, "ENTRYPOINT")
    assert entrypoint is not None
    words = exec_form(entrypoint)
    assert words[0] == "kdran" and len(words) == 3, words
    assert (words[1], words[2]) in known_kdran_commands(), words
    command = inherited(stages, target, "CMD")
    assert command is not None and exec_form(command), f"{target}: CMD must give default arguments"


@pytest.mark.parametrize("target", TARGETS)
def test_has_an_exec_form_healthcheck(stages: dict[str, Stage], target: str) -> None:
    healthcheck = inherited(stages, target, "HEALTHCHECK")
    assert healthcheck is not None and "CMD" in healthcheck
    options, _, command = healthcheck.partition("CMD")
    assert "--interval=" in options and "--timeout=" in options
    assert exec_form(command.strip())[0] == "python"


def test_xapp_healthcheck_probes_the_ric_health_path(stages: dict[str, Stage]) -> None:
    healthcheck = inherited(stages, "xapp", "HEALTHCHECK")
    assert healthcheck is not None and "/ric/v1/health/alive" in healthcheck


def test_dapp_healthcheck_uses_grpc_health(stages: dict[str, Stage]) -> None:
    healthcheck = inherited(stages, "dapp", "HEALTHCHECK")
    assert healthcheck is not None
    script = exec_form(healthcheck.partition("CMD")[2].strip())[1]
    copies = [value.split() for value in stages["dapp"].values("COPY")]
    assert ["deploy/grpc_health_check.py", script] in copies
    assert "grpc_health.v1" in (REPO / "deploy" / "grpc_health_check.py").read_text()


@pytest.mark.parametrize("target", TORCH_FREE_TARGETS)
def test_torch_only_in_distill(stages: dict[str, Stage], target: str) -> None:
    for stage in ancestry(stages, target):
        for run in stage.values("RUN"):
            assert "torch" not in run and "[distill]" not in run, (target, stage.name, run)


def test_distill_installs_pinned_cpu_torch_by_default(stages: dict[str, Stage]) -> None:
    runs = [run for stage in ancestry(stages, "distill") for run in stage.values("RUN")]
    assert any("torch==2.13.0" in run and "whl/${TORCH_VARIANT}" in run for run in runs)
    assert any("'.[distill]'" in run for run in runs)
    variant_args = [value for stage in ancestry(stages, "distill") for value in stage.values("ARG")
                    if value.startswith("TORCH_VARIANT=")]
    assert variant_args == ["TORCH_VARIANT=cpu"]


def test_base_images_are_pinned(stages: dict[str, Stage]) -> None:
    for stage in stages.values():
        if stage.base in stages:
            continue
        image, _, tag = stage.base.rpartition(":")
        assert image and tag and tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), stage.base


def test_every_pip_install_is_pinned(stages: dict[str, Stage]) -> None:
    installs = 0
    for stage in stages.values():
        for run in stage.values("RUN"):
            for words in shell_commands(stage.expand(run)):
                command = " ".join(words)
                if words[:2] != ["pip", "install"]:
                    continue
                installs += 1
                packages = [w for w in words[2:] if not w.startswith("-") and
                            not re.match(r"^(deploy/constraints\.txt|https?://)", w)]
                if all(re.match(r"^[A-Za-z0-9_.-]+==[0-9][^=]*$", p) for p in packages):
                    continue  # exact pins, e.g. pip==X or ricxappframe==3.2.2
                assert f"-c {CONSTRAINTS}" in command, f"unpinned in {stage.name}: {command}"
    assert installs >= 4


def test_constraints_pin_every_image_requirement_within_pyproject() -> None:
    pins = {}
    for line in (REPO / CONSTRAINTS).read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{CONSTRAINTS}: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in IMAGE_EXTRAS:
        requirements += [Requirement(r) for r in project["optional-dependencies"][extra]]
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name == "kdran":
            continue
        assert name in pins, f"{requirement} is not pinned in {CONSTRAINTS}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{CONSTRAINTS} pins {name}=={pins[name]}, pyproject.toml wants {requirement}")
    assert pins[canonicalize_name("ricxappframe")] == "3.2.2"


def test_rmr_comes_from_its_pinned_release_package(stages: dict[str, Stage]) -> None:
    rmr = stages["rmr"]
    assert "RMR_VERSION=4.9.4" in rmr.values("ARG")
    (download,) = rmr.values("ADD")
    assert download.startswith("https://packagecloud.io/o-ran-sc/release/packages/debian/")
    assert "rmr_${RMR_VERSION}_amd64.deb" in download
    assert "rmr" in stages["xapp"].copy_sources()


def test_xapp_environment_conventions(stages: dict[str, Stage]) -> None:
    env = env_of(stages, "xapp")
    assert env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] == "python"
    assert env["CONFIG_FILE"] == "/opt/ric/config/config-file.json"
    copies = [value.split() for value in stages["xapp"].values("COPY")]
    assert ["config-file.json", "schema.json", "/opt/ric/config/"] in copies
    assert ["deploy/rmr/seed.rt", env["RMR_SEED_RT"]] in copies
    command = inherited(stages, "xapp", "CMD")
    assert command is not None and exec_form(command)[-1] == env["CONFIG_FILE"]


@pytest.mark.parametrize("target", TARGETS)
def test_read_only_root_filesystem_friendly(stages: dict[str, Stage], target: str) -> None:
    volume = inherited(stages, target, "VOLUME")
    assert volume is not None and {"/tmp", "/var/lib/kdran"} <= set(exec_form(volume))
    env = env_of(stages, target)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"].startswith("/var/lib/kdran") and env["TMPDIR"] == "/tmp"


def test_build_context_holds_every_copied_path(stages: dict[str, Stage]) -> None:
    """Every COPY source exists and .dockerignore lets it into the context."""
    allowed = [line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    for stage in stages.values():
        for value in stage.values("COPY"):
            if value.startswith("--from="):
                continue
            for source in value.split()[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: missing"
                assert any(source == a or source.startswith(a + "/") for a in allowed), (
                    f"COPY {source}: excluded by .dockerignore")
