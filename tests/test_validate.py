"""Every study value is checked when the study loads: one table-driven test per rule, the shipped and
test studies still load, and `skingen run bad.toml --dry-run` stops with one line (exit 2)."""
from __future__ import annotations

import dataclasses
import tomllib

import pytest

from skingen.classify.train import TrainConfig
from skingen.data.split import SplitConfig
from skingen.errors import UserError
from skingen.generators.ddpm import DDPMConfig
from skingen.generators.sd_lora.config import SDLoRAConfig
from skingen.generators.stylegan2.train import StyleGAN2Config
from skingen.grid import validate
from skingen.grid.spec import (ClassifySpec, DataSpec, ExecutorSpec, GenerateSpec, PhantomSpec, ReportSpec,
                               StudySpec, load_study)
from skingen.metrics.gen_eval import GenMetricsConfig

from builders import GENERATE, REPO, study_variant


def _merge(base: dict, edits: dict) -> dict:
    out = dict(base)
    for key, value in edits.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return repr(v) if isinstance(v, float) else (f'"{v}"' if isinstance(v, str) else str(v))


def _dump(data: dict, prefix: str = "") -> str:
    scalars = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    text = (f"[{prefix}]\n" if prefix and scalars else "") + "".join(line + "\n" for line in scalars)
    for k, v in data.items():
        if isinstance(v, dict):
            text += _dump(v, f"{prefix}.{k}" if prefix else k)
    return text


def write_study(tmp_path, base: str, snippet: str, drop: tuple[str, ...] = ()):
    """jobs/<base>.toml with ``snippet`` (TOML) merged over it and the dotted keys in ``drop`` removed."""
    data = _merge(tomllib.loads((REPO / "jobs" / f"{base}.toml").read_text()), tomllib.loads(snippet))
    for dotted in drop:
        *parents, last = dotted.split(".")
        table = data
        for p in parents:
            table = table[p]
        del table[last]
    path = tmp_path / f"{base}-variant.toml"
    path.write_text(_dump(data))
    return path


# (base study, TOML merged over it, fragment of the one-line error) -- one case or more per field rule
FIELD_CASES = [
    ("smoke", "[study]\nimage_size = -5", "study.image_size = -5: must be an integer from 16 to 4096"),
    ("smoke", "[study]\nimage_size = true", "study.image_size = True: must be an integer"),
    ("smoke", '[study]\nname = "my study/1"', "study.name = 'my study/1': must be letters, digits"),
    ("smoke", "[study]\nseeds = []", "study.seeds = []: must be a non-empty list"),
    ("smoke", "[study]\nseeds = [0, 0]", "study.seeds = [0, 0]: must be a non-empty list of unique items"),
    ("smoke", "[study]\nseeds = [-1]", "study.seeds = [-1]: must be a non-empty list of unique items, each an "
     "integer from 0 to 4294967295"),
    ("smoke", "[study]\npipelines = []", "study.pipelines = []: must be a non-empty list"),
    ("smoke", "[data.phantom]\nn = -3", "data.phantom.n = -3: must be an integer >= 1"),
    ("smoke", "[data.phantom]\nsize = 16", "data.phantom.size = 16: must be an integer from 32 to 4096"),
    ("smoke", '[data]\nsource = "kaggle"', "data.source 'kaggle' unknown; use auto, ham10000"),
    ("smoke", '[data]\nmilk10k_modality = "both"', "data.milk10k_modality 'both' unknown; use dermoscopic"),
    ("smoke", "[split]\nval = 1.0", "split.val = 1.0: must be a finite number >= 0 and < 1"),
    ("smoke", "[split]\ntest = -0.1", "split.test = -0.1: must be a finite number >= 0 and < 1"),
    ("smoke", "[split]\ndedup_distance = 65", "split.dedup_distance = 65: must be an integer from 0 to 64"),
    ("smoke", "[split]\nmax_group_size = 1", "split.max_group_size = 1: must be an integer >= 2"),
    ("smoke", '[classify]\nmodels = ["resnet18", "resnet18"]', "classify.models = ['resnet18', 'resnet18']: must"),
    ("smoke", "[classify]\narms = []", "classify.arms = []: must be a non-empty list"),
    ("smoke", "[classify]\ndoses = [0.0]", "classify.doses = [0.0]: must be a non-empty list of unique items, "
     "each a finite number > 0"),
    ("smoke", '[classify]\ntarget_class = "mel"', "classify.target_class 'mel' unknown; use NV, BCC, BKL, MEL, SCC"),
    ("smoke", '[classify]\ntarget_class = "M-L"', "classify.target_class = 'M-L': must be a class name"),
    ("smoke", '[study]\nclasses = "ham9"', "study.classes 'ham9' unknown; use paper5, ham7, isic2019 or a class set"),
    ("smoke", "[classify]\nn_boot = 5", "classify.n_boot = 5: must be an integer >= 10"),
    ("smoke", "[classify.train]\nepochs = 0", "classify.train.epochs = 0: must be an integer >= 1"),
    ("smoke", "[classify.train]\nlr = -1", "classify.train.lr = -1.0: must be a finite number > 0"),
    ("smoke", "[classify.train]\nlr = nan", "classify.train.lr = nan: must be a finite number > 0"),
    ("smoke", "[classify.train]\nbatch_size = 0", "classify.train.batch_size = 0: must be an integer >= 1"),
    ("smoke", "[classify.train]\nmomentum = 1.5", "classify.train.momentum = 1.5: must be a finite number >= 0"),
    ("smoke", "[classify.train]\nweight_decay = -1e-4", "classify.train.weight_decay = -0.0001: must be"),
    ("smoke", "[classify.train]\nmilestones = [0.5, 1.5]", "classify.train.milestones = [0.5, 1.5]: must be"),
    ("smoke", "[classify.train]\ngamma = 0", "classify.train.gamma = 0.0: must be a finite number > 0 and <= 1"),
    ("smoke", '[classify.train]\nmixed_precision = "fp8"', "classify.train.mixed_precision 'fp8' unknown"),
    ("smoke", "[classify.train]\ngrad_accum = 0", "classify.train.grad_accum = 0: must be an integer >= 1"),
    ("smoke", "[classify.train]\nnum_workers = -1", "classify.train.num_workers = -1: must be an integer >= 0"),
    ("smoke", "[classify.train]\ngradcam_per_class = -1", "classify.train.gradcam_per_class = -1: must be"),
    ("smoke", "[classify.train]\ncheckpoint_every = -1", "classify.train.checkpoint_every = -1: must be"),
    ("smoke", '[classify.train]\nkeep_weights = "last"', "classify.train.keep_weights 'last' unknown; use best, none"),
    ("smoke", "[classify.train]\nseed = 3", "classify.train.seed = 3: set by study.seeds; remove it"),
    ("smoke", '[classify.train]\nmodel = "vgg16"', "classify.train.model = 'vgg16': set by classify.models"),
    ("smoke", '[executor]\nkind = "cloud"', "executor.kind 'cloud' unknown; use debug, local, slurm"),
    ("smoke", "[executor]\nmax_parallel = 0", "executor.max_parallel = 0: must be an integer >= 1"),
    ("smoke", '[executor]\nprofile = ""', "executor.profile = '': must be a non-empty string"),
    ("demo", "[generate]\nseeds = [1, 1]", "generate.seeds = [1, 1]: must be a list of unique items"),
    ("demo", "[generate]\nseed = -1", "generate.seed = -1: must be an integer from 0"),
    ("demo", "[generate]\nn_synthetic = -10", "generate.n_synthetic = -10: must be an integer >= 0"),
    ("demo", '[generate]\nsampler = "euler"', "generate.sampler 'euler' unknown; use ddim, ddpm"),
    ("demo", "[generate]\nsampling_steps = 0", "generate.sampling_steps = 0: must be an integer >= 1"),
    ("demo", "[generate]\nsample_batch = 0", "generate.sample_batch = 0: must be an integer >= 1"),
    ("demo", "[generate]\ntsne_perplexity = 0", "generate.tsne_perplexity = 0.0: must be a finite number > 0"),
    ("demo", "[generate.ddpm]\nmax_steps = 0", "generate.ddpm.max_steps = 0: must be an integer >= 1"),
    ("demo", "[generate.ddpm]\nlr = 0", "generate.ddpm.lr = 0.0: must be a finite number > 0"),
    ("demo", "[generate.ddpm]\nchannels = [16, 64]", "generate.ddpm.channels = [16, 64]: must be a list of items, "
     "each a positive multiple of 32"),
    ("demo", "[generate.ddpm]\nema_decay = 1.0", "generate.ddpm.ema_decay = 1.0: must be a finite number >= 0 and < 1"),
    ("demo", "[generate.ddpm]\nnum_train_timesteps = 0", "generate.ddpm.num_train_timesteps = 0: must be"),
    ("demo", "[generate.ddpm]\nresolution = 64", "generate.ddpm.resolution = 64: set by study.image_size"),
    ("demo", '[generate.ddpm]\nclasses = ["SCC"]', "generate.ddpm.classes = ['SCC']: set by classify.target_class"),
    ("demo", "[generate.stylegan2_ada]\nkimg = 0", "generate.stylegan2_ada.kimg = 0.0: must be a finite number > 0"),
    ("demo", "[generate.stylegan2_ada]\nkimg = -6", "generate.stylegan2_ada.kimg = -6.0: must be"),
    ("demo", "[generate.stylegan2_ada]\nbatch_size = 0", "generate.stylegan2_ada.batch_size = 0: must be"),
    ("demo", "[generate.stylegan2_ada]\ng_lr = -0.002", "generate.stylegan2_ada.g_lr = -0.002: must be"),
    ("demo", '[generate.stylegan2_ada]\npreset = "huge"', "generate.stylegan2_ada.preset 'huge' unknown; use paper256"),
    ("demo", '[generate.stylegan2_ada]\naugment = "fixed:2"', "generate.stylegan2_ada.augment 'fixed:2' unknown; "
     "use 'ada', 'fixed:P' (0 <= P <= 1) or 'none'"),
    ("demo", "[generate.stylegan2_ada]\nada_target = 0", "generate.stylegan2_ada.ada_target = 0.0: must be"),
    ("demo", "[generate.stylegan2_ada]\nstyle_mixing = 2", "generate.stylegan2_ada.style_mixing = 2.0: must be"),
    ("demo", "[generate.stylegan2_ada]\ntruncation_psi = -1", "generate.stylegan2_ada.truncation_psi = -1.0: must"),
    ("demo", '[generate.stylegan2_ada]\nmixed_precision = "fp8"', "generate.stylegan2_ada.mixed_precision 'fp8'"),
    ("demo", '[generate.metrics]\nextractor = "clip"', "generate.metrics.extractor 'clip' unknown; use inception"),
    ("demo", "[generate.metrics]\nn_boot = 0", "n_boot = 0"),  # GenMetricsConfig may say it first, in its words
    ("demo", "[generate.metrics]\nkid_subset_size = 1", "generate.metrics.kid_subset_size = 1: must be"),
    ("demo", "[generate.metrics]\nmemorisation_quantile = 1.0", "generate.metrics.memorisation_quantile = 1.0"),
    ("demo", "[generate.metrics]\nbatch_size = 0", "generate.metrics.batch_size = 0: must be an integer >= 1"),
]

# the demo study with two generators (whatever it lists)
TWO_GENERATORS = ('[generate]\ngenerators = ["ddpm", "stylegan2_ada"]\n[classify]\n'
                  'arms = ["real", "synthetic_ddpm", "synthetic_stylegan2_ada"]\n')

# (rule in validate.CROSS, base, TOML, keys to drop, fragment of the one-line error)
CROSS_CASES = [
    ("_known_factors", "smoke", '[study]\npipelines = ["fancy"]', (), "study.pipelines: 'fancy' is not a preset"),
    ("_known_factors", "smoke", '[classify]\nmodels = ["resnet9"]', (), "classify.models: 'resnet9' unknown; "
     "available: resnet18"),
    ("_known_factors", "demo", '[generate]\ngenerators = ["gan"]', (), "generate.generators: 'gan' unavailable"),
    ("_arms_have_generators", "smoke", '[classify]\narms = ["real", "synthetic_ddpm"]', (),
     "'synthetic_ddpm' needs its generator in [generate]"),
    ("_arms_have_generators", "demo", '[generate]\ngenerators = ["ddpm"]', (),
     "'synthetic_stylegan2_ada' needs its generator"),
    ("_arms_have_generators", "smoke", '[classify]\narms = ["real", "mixup"]', (), "classify.arms: 'mixup' unknown"),
    ("_generator_own_checks", "demo", "", (), None),  # registry checks; every bad value they catch is caught first
    ("_data_source", "smoke", "", ("data.phantom",), "[data] needs sources = [...] or a [data.phantom] table"),
    ("_data_source", "smoke", '[data]\nsources = ["/data/HAM10000"]', (),
     "data.sources = ['/data/HAM10000'] and [data.phantom] both given"),
    ("_reference_model", "smoke", '[classify]\nreference_model = "vgg16"', (),
     "classify.reference_model = 'vgg16': must be one of classify.models (resnet18)"),
    ("_reference_generator", "demo", TWO_GENERATORS + '[report]\nreference_generator = "sd_lora"', (),
     "report.reference_generator = 'sd_lora': must be one of generate.generators (ddpm, stylegan2_ada)"),
    ("_reference_generator", "smoke", '[report]\nreference_generator = "ddpm"', (),
     "report.reference_generator = 'ddpm': must be one of generate.generators (none listed)"),
    ("_split_fractions", "smoke", "[split]\nval = 0.5\ntest = 0.5", (),
     "split.val + split.test = 0.5 + 0.5: must sum to less than 1"),
    ("_stylegan2_size", "demo", '[study]\nimage_size = 48\n[classify]\nmodels = ["resnet18"]', (),
     "study.image_size = 48: StyleGAN2-ADA needs a power of two from 16 to 1024"),
    ("_ddpm_size", "demo", '[study]\nimage_size = 512\n[generate]\ngenerators = ["ddpm"]\n[classify]\n'
     'arms = ["real", "synthetic_ddpm"]', ("generate.ddpm.channels",),
     "study.image_size = 512: DDPM has presets for 16, 32, 64, 128, 256 px; use one or set [generate.ddpm] channels"),
    ("_ddpm_size", "demo", '[study]\nimage_size = 48\n[generate]\ngenerators = ["ddpm"]\n[classify]\n'
     'arms = ["real", "synthetic_ddpm"]\nmodels = ["resnet18"]\n[generate.ddpm]\nchannels = [32, 64, 64, 64, 64, 64]',
     (), "study.image_size = 48: the DDPM UNet with 6 levels (generate.ddpm.channels) halves it 5 times"),
    ("_ddpm_steps", "demo", "[generate]\nsampling_steps = 2000", (),
     "generate.sampling_steps = 2000: must be <= generate.ddpm.num_train_timesteps (1000)"),
    ("_ddpm_steps", "demo", "[generate.ddpm]\ngrid_steps = 1001", (),
     "generate.ddpm.grid_steps = 1001: must be <= generate.ddpm.num_train_timesteps (1000)"),
    ("_ddpm_steps", "demo", "[generate.ddpm]\nwarmup_steps = 500", (),
     "generate.ddpm.warmup_steps = 500: must be <= generate.ddpm.max_steps ("),  # the demo's max_steps follows
    ("_classifier_size", "smoke", '[study]\nimage_size = 40\n[classify]\nmodels = ["vit_b16"]', (),
     "study.image_size = 40: vit_b16 cuts 16 px patches; use a multiple of 16"),
    ("_classifier_size", "smoke", '[study]\nimage_size = 16\n[classify]\nmodels = ["vgg16"]', (),
     "study.image_size = 16: vgg16 halves it 5 times; use at least 32"),
    ("_phantom_splits", "smoke", "[data.phantom]\nn = 20", (), "data.phantom.n = 20: class "),
    ("_class_set", "smoke", '[study]\nclasses = "ham7"\n[classify]\ntarget_class = "SCC"', (),
     "classify.target_class 'SCC' unknown; use AKIEC, BCC, BKL, DF, MEL, NV, VASC"),
    ("_class_set", "smoke", '[study]\nclasses = "no-such-set.toml"', (), "study.classes = "),
]


@pytest.mark.parametrize("base, snippet, fragment", FIELD_CASES, ids=[c[1].split("\n")[-1] for c in FIELD_CASES])
def test_field_rules(tmp_path, base, snippet, fragment):
    path = write_study(tmp_path, base, snippet)
    with pytest.raises(UserError) as exc:
        load_study(path)
    message = str(exc.value)
    assert fragment in message and message.startswith(str(path)) and "\n" not in message


def _unchecked(path, monkeypatch):
    """The study's spec as loaded, without the validation (to call one rule directly)."""
    with monkeypatch.context() as m:
        m.setattr(validate, "validate_study", lambda spec, where: None)
        return load_study(path)


@pytest.mark.parametrize("rule, base, snippet, drop, fragment", CROSS_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CROSS_CASES)])
def test_cross_field_rules(tmp_path, monkeypatch, rule, base, snippet, drop, fragment):
    path = write_study(tmp_path, base, snippet, drop)
    own = getattr(validate, rule)(_unchecked(path, monkeypatch))
    if fragment is None:
        assert own is None
        load_study(path)
        return
    assert own is not None and fragment in own  # this rule, not another, says it
    with pytest.raises(UserError) as exc:
        load_study(path)
    assert str(exc.value) == f"{path}: {own}"


def test_every_cross_rule_has_a_case():
    assert {r.__name__ for r in validate.CROSS} == {c[0] for c in CROSS_CASES}


def test_every_field_has_a_rule():
    """A new config field needs its rule in skingen/grid/validate.py FIELDS (and a case above)."""
    for cls, rules in validate.FIELDS.items():
        missing = {f.name for f in dataclasses.fields(cls)} - set(rules)
        assert not missing, f"{cls.__name__}: no rule for {', '.join(sorted(missing))} in skingen/grid/validate.py"


TABLES = {  # config class -> its TOML table and the shipped study it is tried on
    StudySpec: ("study", "smoke"), DataSpec: ("data", "smoke"), PhantomSpec: ("data.phantom", "smoke"),
    SplitConfig: ("split", "smoke"), ClassifySpec: ("classify", "smoke"), TrainConfig: ("classify.train", "smoke"),
    ExecutorSpec: ("executor", "smoke"), GenerateSpec: ("generate", "demo"), DDPMConfig: ("generate.ddpm", "demo"),
    StyleGAN2Config: ("generate.stylegan2_ada", "demo"), GenMetricsConfig: ("generate.metrics", "demo"),
    SDLoRAConfig: ("generate.sd_lora", "demo"), ReportSpec: ("report", "demo"),
}


def _each_field_rule():
    for cls, (table, base) in TABLES.items():
        for f in dataclasses.fields(cls):
            rule = validate.FIELDS[cls][f.name]
            if isinstance(rule, validate.SetBy):
                default = validate._default(f)
                bad = ["SCC"] if isinstance(default, tuple) else default + ("x" if isinstance(default, str) else 1)
                yield pytest.param(base, table, f.name, bad, f"set by {rule.key}", id=f"{table}.{f.name}")
            elif rule.bad is not None:
                yield pytest.param(base, table, f.name, rule.bad, rule.allowed, id=f"{table}.{f.name}")


def test_tables_cover_every_config_class():
    assert set(TABLES) == set(validate.FIELDS)


@pytest.mark.parametrize("base, table, name, bad, allowed", list(_each_field_rule()))
def test_each_field_rejects_a_value_outside_its_rule(tmp_path, base, table, name, bad, allowed):
    snippet: dict = {name: bad}
    for part in reversed(table.split(".")):
        snippet = {part: snippet}
    path = write_study(tmp_path, base, _dump(snippet))
    with pytest.raises(UserError) as exc:
        load_study(path)
    message = str(exc.value)
    assert message.startswith(str(path)) and "\n" not in message
    if message.startswith(f"{path} [{table}]: "):  # the config class checked itself first, in its own words
        assert f"{name} = {bad}" in message
    else:
        assert message.startswith(f"{path}: {table}.{name} ") and allowed in message


def test_several_bad_values_are_counted_on_the_one_line(tmp_path):
    path = write_study(tmp_path, "smoke", "[study]\nimage_size = -5\n[classify.train]\nepochs = 0\nlr = -1")
    with pytest.raises(UserError, match=r"study.image_size = -5: .* \(and 2 more\)$"):
        load_study(path)


@pytest.mark.parametrize("name", ["smoke", "demo", "paper"])
def test_shipped_studies_load(name):
    assert load_study(REPO / "jobs" / f"{name}.toml").name == name


@pytest.mark.parametrize("replace, extra", [
    ({}, ""),
    ({'arms = ["real", "oversample"]': 'arms = ["real", "synthetic_ddpm", "synthetic_stylegan2_ada"]'},
     GENERATE),
    ({"epochs = 1": "epochs = 1\npretrained = true"}, '\n[generate]\ngenerators = ["ddpm"]\n[generate.metrics]\n'
     'extractor = "inception"\n[generate.ddpm]\ninit_from = "/assets/diffusers/ddpm-celebahq-256"\n'),  # test_assets
    ({"epochs = 1": "epochs = 60", 'arms = ["real", "oversample"]': 'arms = ["real"]'}, ""),  # test_slurm
    ({"epochs = 1": 'epochs = 1\npretrained = true\nweights_dir = "/nonexistent"'}, ""),  # test_grid
    ({'models = ["resnet18"]': 'models = ["resnet18", "efficientnet_b0"]', "test = 0.15": "test = 0.2"}, ""),
])
def test_studies_the_tests_use_still_load(tmp_path, replace, extra):
    path = study_variant(tmp_path, replace=replace)
    path.write_text(path.read_text() + extra)
    load_study(path)


def test_dry_run_stops_on_a_bad_value_with_one_line(tmp_path, cli):
    path = write_study(tmp_path, "smoke", "[classify.train]\nepochs = 0")
    r = cli("run", path, "--dry-run", "--out", tmp_path / "out")
    assert r.code == 2 and r.out == ""
    assert r.err.startswith("skingen: error: ") and r.err.count("\n") == 1
    assert "classify.train.epochs = 0: must be an integer >= 1" in r.err
    assert not (tmp_path / "out").exists()  # nothing planned, nothing written


def test_the_report_table_names_the_reference_generator(tmp_path):
    """[report] reference_generator: one of the study's generators; unknown keys and wrong types are one-line errors."""
    assert load_study(write_study(tmp_path, "demo", TWO_GENERATORS + '[report]\nreference_generator = "ddpm"')) \
        .report.reference_generator == "ddpm"
    assert load_study(REPO / "jobs" / "demo.toml").report.reference_generator == ""  # default: the report's rule
    for snippet, fragment in (('[report]\nreference = "ddpm"', "[report]: unknown key(s) reference; allowed: "
                               "reference_generator"),
                              ("[report]\nreference_generator = 3", "reference_generator"),
                              ('[report]\nreference_generator = "gan"', "report.reference_generator = 'gan': must be "
                               "one of generate.generators (ddpm, stylegan2_ada)")):
        with pytest.raises(UserError) as exc:
            load_study(write_study(tmp_path, "demo", TWO_GENERATORS + snippet))
        assert fragment in str(exc.value) and "\n" not in str(exc.value)
