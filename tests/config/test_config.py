"""Config loading and validation: presets, overrides, every error at once, registry names, paths."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

import anymodal
from anymodal import (
    CONTRACT_VERSION,
    BridgeSpec,
    ConfigError,
    EncoderSpec,
    ModalitySpec,
    ProjectorSpec,
    TemplateSpec,
    TensorLayout,
    UsageError,
    hookimpl,
)
from anymodal.config import (
    AnymodalConfig,
    LoadedConfig,
    ModalityConfig,
    available_presets,
    build,
    load_config,
    resolve_device,
    resolve_dtype,
    resolve_path,
    validate_against,
)
from anymodal.contract.registry import Registry, load_registry

REPO = Path(__file__).resolve().parents[2]
SHIPPED_PRESETS = sorted(REPO.glob("configs/*.yaml"))
PLUGINS_HINT = "run `anymodal plugins`"


# --- a throwaway plugin, so these tests depend on no one else's specs -------------------------


@dataclass
class FakeEncoderOptions:
    depth: int = 2
    pool: Literal["mean", "cls"] = "mean"


@dataclass
class FakeProjectorOptions:
    hidden: int = 64
    dropout: float = 0.0


def _unused(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("config loading must not build or load anything")


class FakePlugin:
    ANYMODAL_CONTRACT = CONTRACT_VERSION

    @hookimpl
    def register_modalities(self, register: Any) -> None:
        common: dict[str, Any] = {"loader": _unused, "preprocess": _unused}
        register(ModalitySpec("image", file_kinds=("png",), default_encoder="fake_encoder", **common))
        register(
            ModalitySpec(
                "audio",
                file_kinds=("wav",),
                default_encoder="missing_audio_encoder",
                default_projector="fake_linear",
                **common,
            )
        )

    @hookimpl
    def register_encoders(self, register: Any) -> None:
        register(EncoderSpec("fake_encoder", build=_unused, options=FakeEncoderOptions))
        register(EncoderSpec("image_only_encoder", build=_unused, modalities=("image",)))

    @hookimpl
    def register_projectors(self, register: Any) -> None:
        register(ProjectorSpec("linear", build=_unused))
        register(ProjectorSpec("fake_mlp", build=_unused, options=FakeProjectorOptions))
        register(ProjectorSpec("fake_linear", build=_unused))

    @hookimpl
    def register_bridges(self, register: Any) -> None:
        register(BridgeSpec("hf", load=_unused))

    @hookimpl
    def register_templates(self, register: Any) -> None:
        register(TemplateSpec("plain", render=_unused))
        register(TemplateSpec("chatml", render=_unused))


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    # Core's built-in plugin registers projectors and templates of its own; swap it for an empty
    # module so the names here are exactly the fake plugin's.
    empty = types.ModuleType("anymodal.runtime.builtin")
    empty.ANYMODAL_CONTRACT = CONTRACT_VERSION  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "anymodal.runtime.builtin", empty)
    monkeypatch.setattr(anymodal, "builtin", empty, raising=False)
    reg = load_registry(entry_points=False, plugins=[FakePlugin()], strict=True)
    assert sorted(reg.modalities) == ["audio", "image"]
    return reg


@pytest.fixture(autouse=True)
def _no_user_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANYMODAL_CONFIG_PATH", raising=False)


def write(directory: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def issues_of(excinfo: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return excinfo.value.issues


# --- presets ----------------------------------------------------------------------------------


def test_shipped_presets_are_the_expected_ones() -> None:
    expected = [
        "demo",
        "hf-llm",
        "imagebind-huge",
        "pandagpt-13b",
        "pandagpt-7b",
        "train-stage1",
        "train-stage2",
    ]
    assert [p.stem for p in SHIPPED_PRESETS] == expected
    assert sorted(available_presets()) == expected


@pytest.mark.parametrize("preset", SHIPPED_PRESETS, ids=lambda p: p.stem)
def test_every_shipped_preset_validates(preset: Path) -> None:
    assert validate_against(AnymodalConfig, _yaml(preset)) == []
    # Against what is really installed: core and the first-party plugins.
    loaded = load_config(preset.stem, registry=load_registry())
    assert loaded.source == preset.stem
    assert loaded.file.name == preset.name


def _yaml(path: Path) -> Any:
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(OmegaConf.load(path))
    assert isinstance(data, dict)
    return {key: value for key, value in data.items() if not str(key).startswith("x-")}  # anchor holders


def test_training_presets_are_the_two_stages() -> None:
    stage1 = load_config("train-stage1", registry=load_registry()).config.train
    stage2 = load_config("train-stage2", registry=load_registry()).config.train
    assert (stage1.stage, stage2.stage) == (1, 2)
    lora = stage2.lora
    assert (lora.r, lora.alpha, lora.dropout, lora.target_modules) == (
        32,
        32,
        0.1,
        ["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    assert (stage2.optimizer.lr, stage2.optimizer.betas, stage2.optimizer.weight_decay) == (
        5e-4,
        [0.9, 0.95],
        0.001,
    )
    assert stage2.init_from is not None and stage2.init_from.endswith("runs/stage1")


def test_with_no_model_named_the_builtin_demo_model_is_used() -> None:
    registry = load_registry()
    loaded = load_config(None, registry=registry)
    model = loaded.config.model
    packaged = REPO / "anymodal" / "models" / "demo"
    assert (loaded.source, loaded.file) == ("builtin:demo", packaged / "anymodal.yaml")
    assert (model.llm.path, model.llm.bridge) == (str(packaged / "llm"), "hf")
    assert list(model.modalities) == ["image", "video", "audio", "depth", "thermal", "imu"]
    for settings in model.modalities.values():
        assert settings.encoder.weights == str(packaged / "imagebind.safetensors")
    assert model.notice is not None and "synthetic world" in model.notice
    assert load_config("default", registry=registry).source == "builtin:demo"


def test_packaged_preset_paths_resolve_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load_config("hf-llm")
    assert loaded.base_dir == tmp_path
    assert loaded.config.model.llm.path == str(tmp_path / "models" / "my-llm")


def test_unknown_preset_suggests_and_lists_the_available_ones() -> None:
    with pytest.raises(UsageError) as excinfo:
        load_config("defualt")
    assert excinfo.value.message == "unknown preset 'defualt' (did you mean 'default'?)"
    assert (
        excinfo.value.hint is not None
        and "presets: default, demo, hf-llm, imagebind-huge, pandagpt-13b, pandagpt-7b, train-"
        in excinfo.value.hint
    )


def test_config_path_env_is_searched_before_the_shipped_presets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write(first, "generation: {max_new_tokens: 7}\n", "default.yaml")
    write(second, "generation: {max_new_tokens: 8}\n", "default.yaml")
    write(second, "generation: {max_new_tokens: 9}\n", "mine.yaml")
    monkeypatch.setenv("ANYMODAL_CONFIG_PATH", f"{first}:{tmp_path / 'absent'}:{second}")
    assert load_config(None).config.generation.max_new_tokens == 7
    mine = load_config("mine")
    assert mine.config.generation.max_new_tokens == 9
    assert mine.base_dir == second  # a user's preset resolves paths against its own directory
    assert {"default", "hf-llm", "mine"} <= set(available_presets())


# --- the generic validator --------------------------------------------------------------------


def test_validator_messages() -> None:
    data = {
        "model": {
            "llm": {"pth": "x", "options": {"anything": [1]}},
            "dtype": "bf16",
            "max_input_mb": 10,  # an int is a fine float
            "system_prompt": None,  # Optional
            "modalities": {"image": {"projector": {"nmae": "mlp"}}, "audio": 3},
        },
        "generation": {"max_new_tokens": "abc", "do_sample": 1, "temperature": True, "stop": ["a", 3]},
    }
    assert validate_against(AnymodalConfig, data) == [
        "unknown key 'model.llm.pth' (did you mean 'path'?)",
        "model.dtype: 'bf16' is not one of auto, float32, bfloat16, float16 (did you mean 'bfloat16'?)",
        "unknown key 'model.modalities.image.projector.nmae' (did you mean 'name'?)",
        "model.modalities.audio: expected a mapping, got 3",
        "generation.max_new_tokens: expected an integer, got 'abc'",
        "generation.do_sample: expected true or false, got 1",
        "generation.temperature: expected a number, got true",
        "generation.stop[1]: expected a string, got 3 (quote it to make it a string)",
    ]


def test_validator_strictness_and_path_prefix() -> None:
    assert validate_against(AnymodalConfig, {"generation": {"seed": True}}) == [
        "generation.seed: expected an integer, got true"
    ]
    assert validate_against(AnymodalConfig, {"generation": {"seed": None, "top_p": 1}}) == []
    assert validate_against(AnymodalConfig, ["a"]) == ["expected a mapping, got a list"]
    assert validate_against(FakeEncoderOptions, {"depht": 1}, "x.options") == [
        "unknown key 'x.options.depht' (did you mean 'depth'?)"
    ]


def test_build_makes_nested_instances() -> None:
    data = {
        "model": {"modalities": {"image": {"projector": {"name": "mlp"}}}},
        "generation": {"temperature": 1, "stop": ["###"]},
    }
    config = build(AnymodalConfig, data)
    image = config.model.modalities["image"]
    assert isinstance(image, ModalityConfig)
    assert (image.projector.name, image.encoder.name) == ("mlp", None)
    assert config.generation.temperature == 1.0 and isinstance(config.generation.temperature, float)
    assert config.generation.stop == ["###"]
    assert config.model.llm.path == "builtin:tiny-untrained"  # defaults fill the rest
    with pytest.raises(ConfigError, match=r"generation\.top_p: expected a number"):
        build(AnymodalConfig, {"generation": {"top_p": "high"}})


# --- loading files ----------------------------------------------------------------------------


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        model:
          llm: {pth: x}
          fusion: summ
          span_open: "<{nme}>"
        generation:
          max_new_tokens: 0
          top_p: many
        extra: 1
        """,
    )
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert issues_of(excinfo) == [
        "unknown key 'model.llm.pth' (did you mean 'path'?)",
        "model.fusion: 'summ' is not one of spans, sum (did you mean 'sum'?)",
        "generation.top_p: expected a number, got 'many'",
        "unknown key 'extra' (did you mean 'train'?)",
        "generation.max_new_tokens: must be at least 1, got 0",
        "model.span_open: '<{nme}>' is not a valid span: use {name} for the modality name and {{ }} "
        "for literal braces",
    ]
    assert str(excinfo.value).startswith(f"6 problems in config {path}: (1) unknown key")


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  llm:\n    path: [unclosed\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    message = str(excinfo.value)
    assert str(path) in message and "line 4, column 1: malformed YAML" in message
    assert "\n" not in message


def test_top_level_list_and_missing_file_and_bare_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping of keys at the top level"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(UsageError, match=r"config file not found: .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(UsageError, match=r"has no anymodal\.yaml"):
        load_config(tmp_path)


def test_a_directory_with_anymodal_yaml_is_a_saved_model(tmp_path: Path) -> None:
    saved = tmp_path / "run" / "final"
    write(saved, "model:\n  llm: {path: ./llm, adapter: lora}\n", "anymodal.yaml")
    (saved / "lora").mkdir()
    loaded = load_config(str(saved))
    assert loaded.file == saved / "anymodal.yaml"
    assert loaded.base_dir == saved
    assert loaded.config.model.llm.path == str(saved / "llm")
    assert loaded.config.model.llm.adapter == str(saved / "lora")  # exists there, so it is local


def test_a_plain_hugging_face_model_directory_is_that_llm_with_defaults(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    loaded = load_config(str(tmp_path), ["generation.max_new_tokens=9"])
    assert loaded.config.model.llm.path == str(tmp_path)
    assert loaded.config.model.modalities == {} and loaded.config.model.notice is None
    assert loaded.config.generation.max_new_tokens == 9
    assert loaded.file == tmp_path / "config.json"


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    path = write(
        tmp_path / "sub",
        """
        model:
          llm: {path: org/name, adapter: ~/adapters/x}
          modalities:
            image:
              encoder: {weights: ../weights/enc.pth}
              projector: {weights: builtin:zero}
        """,
    )
    loaded = load_config(path)
    model = loaded.config.model
    assert loaded.base_dir == tmp_path / "sub"
    assert model.llm.path == "org/name"  # a hub id that does not exist locally
    assert model.llm.adapter == str(Path.home() / "adapters" / "x")
    assert model.modalities["image"].encoder.weights == str(tmp_path / "weights" / "enc.pth")
    assert model.modalities["image"].projector.weights == "builtin:zero"


def test_resolve_path_rule(tmp_path: Path) -> None:
    (tmp_path / "org" / "exists").mkdir(parents=True)
    assert resolve_path("org/exists", tmp_path) == str(tmp_path / "org" / "exists")
    assert resolve_path("org/other", tmp_path) == "org/other"
    assert resolve_path(".hidden", tmp_path) == str(tmp_path / ".hidden")
    assert resolve_path("/abs/x", tmp_path) == "/abs/x"
    assert resolve_path("builtin:tiny-untrained", tmp_path) == "builtin:tiny-untrained"
    assert resolve_path(None, tmp_path) is None


def test_empty_modality_block_enables_it_with_defaults(tmp_path: Path, registry: Registry) -> None:
    loaded = load_config(write(tmp_path, "model:\n  modalities:\n    image:\n"), registry=registry)
    image = loaded.config.model.modalities["image"]
    assert (image.encoder.name, image.projector.name) == ("fake_encoder", "linear")
    assert image.encoder.options == FakeEncoderOptions()


# --- overrides --------------------------------------------------------------------------------


def test_an_optional_modality_without_its_plugin_is_left_out(tmp_path: Path, registry: Registry) -> None:
    text = "model:\n  modalities:\n    image: {optional: true}\n    lidar: {optional: true}\n    sonar:\n"
    text += "      optional: true\n      projector: {name: linear}\n"
    loaded = load_config(write(tmp_path, text), registry=registry)
    assert list(loaded.config.model.modalities) == ["image"]  # installed: kept, optional or not
    assert loaded.left_out == ("lidar", "sonar")
    # Without a registry nothing is known to be missing, so nothing is left out.
    assert load_config(write(tmp_path, text)).left_out == ()
    # A modality that is not optional is still refused, with the usual message.
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, "model:\n  modalities:\n    lidar: {}\n"), registry=registry)
    assert issues_of(excinfo)[0].startswith("model.modalities.lidar: unknown modality 'lidar'")
    with pytest.raises(ConfigError) as excinfo:
        load_config(
            write(tmp_path, "model:\n  modalities:\n    lidar: {optional: maybe}\n"), registry=registry
        )
    assert "model.modalities.lidar.optional: expected" in issues_of(excinfo)[0]


def test_overrides_apply_and_are_validated(tmp_path: Path, registry: Registry) -> None:
    loaded = load_config(
        write(tmp_path, "model: {}\n"),
        [
            "generation.temperature=0.7",
            "generation.stop=[a,b]",
            "model.modalities.image.projector.name=fake_mlp",
            "model.modalities.image.projector.options.hidden=8",
        ],
        registry=registry,
    )
    config = loaded.config
    assert config.generation.temperature == 0.7
    assert config.generation.stop == ["a", "b"]
    assert config.model.modalities["image"].projector.options == FakeProjectorOptions(hidden=8)
    assert loaded.overrides[0] == "generation.temperature=0.7"

    with pytest.raises(ConfigError) as excinfo:
        load_config(None, ["generation.max_new_tokens=abc", "model.llm.paht=x"])
    assert issues_of(excinfo) == [
        "unknown key 'model.llm.paht' (did you mean 'path'?) (from override 'model.llm.paht=x')",
        "generation.max_new_tokens: expected an integer, got 'abc' (from override "
        "'generation.max_new_tokens=abc')",
    ]


def test_override_paths_resolve_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "configs", "model:\n  llm: {adapter: ./lora}\n")
    loaded = load_config(path, ["model.llm.path=./my-llm"])
    assert loaded.config.model.llm.path == str(tmp_path / "my-llm")
    assert loaded.config.model.llm.adapter == str(tmp_path / "configs" / "lora")


@pytest.mark.parametrize("override", ["generation", "=3", "model..device=cpu"])
def test_malformed_override_is_named(override: str) -> None:
    with pytest.raises(UsageError) as excinfo:
        load_config(None, [override])
    assert excinfo.value.message == f"malformed override {override!r}: expected key=value"


def test_override_with_bad_yaml_value_is_named() -> None:
    with pytest.raises(UsageError, match=r"malformed override 'generation.stop=\[a,'"):
        load_config(None, ["generation.stop=[a,"])


# --- registry checks --------------------------------------------------------------------------


def test_unknown_names_suggest_and_point_at_anymodal_plugins(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path,
        """
        model:
          llm: {bridge: hff}
          template: chatmll
          fallback_template: plian
          modalities:
            imag: {}
            image:
              encoder: {name: fake_encodr}
              projector: {name: fake_mpl}
            audio: {}
        """,
    )
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, registry=registry)
    issues = issues_of(excinfo)
    assert [issue.split(":")[0] for issue in issues] == [
        "model.llm.bridge",
        "model.template",
        "model.fallback_template",
        "model.modalities.imag",
        "model.modalities.image.encoder.name",
        "model.modalities.image.projector.name",
        "model.modalities.audio.encoder.name",
    ]
    assert issues[0].startswith(
        "model.llm.bridge: unknown bridge 'hff' (did you mean 'hf'?); installed bridges: hf"
    )
    assert "unknown template 'chatmll' (did you mean 'chatml'?)" in issues[1]
    assert "unknown template 'plian' (did you mean 'plain'?)" in issues[2]
    assert issues[3].startswith(
        "model.modalities.imag: unknown modality 'imag' (did you mean 'image'?); "
        "installed modalities: audio, image"
    )
    assert "unknown encoder 'fake_encodr' (did you mean 'fake_encoder'?)" in issues[4]
    assert "unknown projector 'fake_mpl' (did you mean 'fake_mlp'?)" in issues[5]
    assert "modality 'audio' defaults to encoder 'missing_audio_encoder', which is not installed" in issues[6]
    assert all(PLUGINS_HINT in issue for issue in issues)


def test_plugin_options_are_validated_and_built(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path,
        """
        model:
          modalities:
            image:
              encoder: {options: {depth: 4}}
              projector: {name: fake_mlp, options: {hidden: 128, dropout: 0}}
        """,
    )
    loaded = load_config(path, registry=registry)
    image = loaded.config.model.modalities["image"]
    assert image.encoder.name == "fake_encoder"  # the modality's default, pinned
    assert image.encoder.options == FakeEncoderOptions(depth=4, pool="mean")
    assert image.projector.options == FakeProjectorOptions(hidden=128, dropout=0.0)
    assert isinstance(image.projector.options.dropout, float)  # type: ignore[attr-defined]
    text = loaded.resolved_yaml()
    assert "depth: 4" in text and "pool: mean" in text and "hidden: 128" in text

    # The resolved YAML is a config of its own: saved as a model directory it loads identically.
    write(tmp_path / "saved", text, "anymodal.yaml")
    again = load_config(tmp_path / "saved", registry=registry)
    assert again.config == loaded.config


def test_bad_plugin_options_are_reported_with_the_schema_problems(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path,
        """
        model:
          dtype: f32
          modalities:
            image:
              encoder: {options: {depht: 4, pool: max}}
              projector: {name: fake_linear, options: {hidden: 3}}
        """,
    )
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, registry=registry)
    assert issues_of(excinfo) == [
        "model.dtype: 'f32' is not one of auto, float32, bfloat16, float16 (did you mean 'float32'?)",
        "unknown key 'model.modalities.image.encoder.options.depht' (did you mean 'depth'?)",
        "model.modalities.image.encoder.options.pool: 'max' is not one of mean, cls",
        "model.modalities.image.projector.options: projector 'fake_linear' takes no options, got hidden",
    ]


def test_encoder_limited_to_other_modalities(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(
            write(tmp_path, "model: {}\n"),
            ["model.modalities.audio.encoder.name=image_only_encoder"],
            registry=registry,
        )
    assert issues_of(excinfo) == [
        "model.modalities.audio.encoder.name: encoder 'image_only_encoder' does not support modality "
        "'audio' (it supports image) (from override 'model.modalities.audio.encoder.name=image_only_encoder')"
    ]


# --- declared tensor layouts ------------------------------------------------------------------

ECG = ("leads", "samples")


@dataclass
class EcgNetOptions:
    leads: int = 12


def ecg_preprocess(signal: Any, samples: int = 5000) -> Any:
    return _unused(signal, samples)


class EcgPlugin:
    """A modality and its encoder that declare their layouts: 12 leads emitted, ``leads`` taken."""

    ANYMODAL_CONTRACT = CONTRACT_VERSION

    @hookimpl
    def register_modalities(self, register: Any) -> None:
        def emits(options: Any) -> TensorLayout:
            return TensorLayout((12, options["samples"]), names=ECG)

        register(ModalitySpec("ecg", _unused, ecg_preprocess, ("npy",), "ecg-net", emits=emits))

    @hookimpl
    def register_encoders(self, register: Any) -> None:
        def takes(modality: str, options: EcgNetOptions) -> TensorLayout:
            return TensorLayout((options.leads, None), names=ECG)

        register(EncoderSpec("ecg-net", build=_unused, options=EcgNetOptions, takes=takes))

    @hookimpl
    def register_bridges(self, register: Any) -> None:
        register(BridgeSpec("hf", load=_unused))


def test_a_preprocessing_that_emits_what_its_encoder_does_not_take_is_a_config_error(
    tmp_path: Path,
) -> None:
    registry = load_registry(entry_points=False, plugins=[EcgPlugin()], strict=True)
    path = write(tmp_path, "model:\n  modalities:\n    ecg: {preprocess: {samples: 2500}}\n")
    assert load_config(path, registry=registry).config.model.modalities["ecg"].encoder.name == "ecg-net"
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, ["model.modalities.ecg.encoder.options.leads=8"], registry=registry)
    assert issues_of(excinfo) == [
        "model.modalities.ecg: the ecg preprocessing emits [leads=12, samples=2500] float32 but "
        "encoder ecg-net takes [leads=8, samples=*] float32 (leads: 12 != 8) "
        "(from override 'model.modalities.ecg.encoder.options.leads=8')"
    ]
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, ["model.modalities.ecg.preprocess.samples=many"], registry=registry)
    assert issues_of(excinfo) == [
        "model.modalities.ecg: cannot work out the layouts its preprocessing and encoder declare: "
        "a layout's dims are sizes (whole numbers) or None, got (12, 'many') "
        "(from override 'model.modalities.ecg.preprocess.samples=many')"
    ]


# --- resolved YAML, devices, imports ----------------------------------------------------------


def test_resolved_yaml_names_source_and_overrides() -> None:
    loaded = load_config(None, ["generation.seed=3"])
    assert isinstance(loaded, LoadedConfig)
    text = loaded.resolved_yaml()
    assert text.startswith("# anymodal config resolved from builtin:demo\n# overrides: generation.seed=3\n")
    assert "seed: 3" in text and f"path: {REPO / 'anymodal' / 'models' / 'demo' / 'llm'}\n" in text


def test_resolve_device_and_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(UsageError) as excinfo:
        resolve_device("cuda")
    assert "CUDA is not available" in excinfo.value.message
    assert excinfo.value.hint is not None and "model.device=cpu" in excinfo.value.hint
    with pytest.raises(UsageError, match="'gpu' is not a device"):
        resolve_device("gpu")
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"
    with pytest.raises(UsageError, match=r"'bf16' is not one of .*did you mean 'bfloat16'"):
        resolve_dtype("bf16", "cpu")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_dtype("auto", "cuda") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype("auto", "cuda") == "float32"


def test_loading_a_config_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from anymodal.config import load_config\n"
        "load_config(None, ['generation.seed=1']).resolved_yaml()\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


# --- YAML anchors and built-in models -----------------------------------------------------------


def test_top_level_x_keys_hold_anchors_and_are_not_settings(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "x-short: &short {max_new_tokens: 5, do_sample: false}\ngeneration: *short\n",
        "anchors.yaml",
    )
    generation = load_config(file).config.generation
    assert (generation.max_new_tokens, generation.do_sample) == (5, False)


def test_an_unknown_builtin_model_is_named_with_a_suggestion() -> None:
    with pytest.raises(UsageError) as excinfo:
        load_config("builtin:dmeo")
    assert excinfo.value.message == "unknown built-in model 'dmeo' (did you mean 'demo'?)"


def test_a_packaged_model_file_that_is_missing_says_to_reinstall(monkeypatch: pytest.MonkeyPatch) -> None:
    import anymodal.config.sources as sources

    monkeypatch.setattr(sources, "__file__", "/nonexistent/anymodal/config/sources.py")
    with pytest.raises(UsageError) as excinfo:
        resolve_path("builtin:demo/llm", Path.cwd())
    assert (
        "builtin:demo/llm" in excinfo.value.message
        and "missing from the installed anymodal" in excinfo.value.message
    )
    assert excinfo.value.hint is not None and "reinstall" in excinfo.value.hint


def test_a_missing_hf_bridge_says_which_distribution_to_install(tmp_path):
    config = tmp_path / "model.yaml"
    config.write_text("model:\n  llm: {path: ./llm}\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(config, registry=load_registry(entry_points=False))
    assert issues_of(excinfo) == [
        "model.llm.bridge: bridge 'hf' is not installed: anymodal install anymodal-hf; installed bridges: "
        "none (run `anymodal plugins` to see what is installed)"
    ]
