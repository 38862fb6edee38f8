"""The shipped mini model: loads offline as FLUX's classes, fits its size budget, and measurably restores held-out
photos; the build command refuses what it must and resumes exactly."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fluxir_hub.mini import MINI_DIR, has_mini_weights, load_mini_pipeline

from .helpers import gen

pytestmark = pytest.mark.skipif(not has_mini_weights(), reason="no mini weights (run fluxir-build-mini)")

# Margins measured on this crop (8 steps) with the shipped (v2) weights, with some room: the adapter alone (no
# restoration sampling, no colour fix) gains 8.0 dB over the zero adapter; with the pipeline's defaults it ends 3.25 dB
# under bicubic here (1.0 dB on the 14-crop held-out benchmark at 20 steps: this crop is one where bicubic does well).
ADAPTER_GAIN_DB = 6.0
BICUBIC_GAP_DB = 4.0


@pytest.fixture(scope="module")
def mini():
    return load_mini_pipeline(device="cpu")


@pytest.fixture(scope="module")
def heldout_pair():
    """A crop of a held-out photo and its seesr x4 degradation (never seen by any training stage)."""
    from dataset_builder import degrade
    from training.mini.photos import load_photo, photo_names

    assert "chelsea" in photo_names("heldout")
    hq = load_photo("chelsea").crop((140, 60, 268, 188))  # 128 px: the cat's face and fur
    return hq, degrade(hq, preset="seesr", scale=4, seed=7).lq


def _psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = (np.asarray(im, dtype=np.float64) / 255 for im in (a, b))
    return float(10 * np.log10(1 / np.mean((x - y) ** 2)))


def test_loads_offline_as_flux_classes_within_the_size_budget(mini):
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    assert isinstance(mini.transformer, FluxTransformer2DModel) and isinstance(mini.vae, AutoencoderKL)
    assert mini.transformer.config.num_layers >= 1 and mini.transformer.config.num_single_layers >= 1
    assert mini.vae.config.latent_channels == 16 and mini.transformer.config.in_channels == 64
    assert mini.vae.config.scaling_factor != 1.0 and mini.vae.config.shift_factor != 0.0  # measured, FLUX-style
    assert mini.adapter.has_empty_prompt_embeds and mini.adapter.config.rank == 32
    size = sum(p.stat().st_size for p in MINI_DIR.rglob("*.safetensors"))
    assert size <= 60e6, f"{size / 1e6:.1f} MB of weights"
    card = (MINI_DIR / "README.md").read_text()
    assert "not FLUX.1" in card and "heldout" in card and "| PSNR |" in card
    assert "mate-backgrounds" in card and "CC-BY-4.0" in card and "(gallery.jpg)" in card  # photos, licences, gallery
    assert (MINI_DIR / "gallery.jpg").is_file()
    for config in [MINI_DIR / "model_index.json", *MINI_DIR.glob("*/config.json")]:  # no build machine's folders
        assert not json.loads(config.read_text()).get("_name_or_path", "fluxir-mini").startswith("/"), config
    build = json.loads((MINI_DIR / "mini_build_config.json").read_text())
    assert build["adapter"]["rank"] == 32 and build["adapter"]["pixel_loss_weight"] > 0


def test_the_all_in_one_adapter_carries_every_task_prompt():
    from fluxir_hub import FluxIRAdapter
    from fluxir_hub.mini import ALL_IN_ONE_DIR
    from fluxir_hub.tasks import TASKS

    adapter = FluxIRAdapter.from_pretrained(ALL_IN_ONE_DIR)
    assert sorted(adapter.config.task_prompts) == sorted(TASKS)
    # every task restores without a text encoder: each prompt's embeddings ship in the adapter
    assert sorted(adapter.cached_prompts) == sorted(["", *adapter.config.task_prompts.values()])


def test_trained_adapter_restores_a_held_out_photo(mini, heldout_pair):
    import copy

    from fluxir_hub import FluxIRAdapter

    hq, lq = heldout_pair
    zero = copy.copy(mini)
    adapter = FluxIRAdapter.from_transformer(mini.transformer, rank=32, max_sequence_length=32)
    adapter.set_empty_prompt_embeds(*mini.adapter.get_empty_prompt_embeds())
    zero.register_modules(adapter=adapter)
    adapter_only = {"restoration_weight": 0.0, "color_fix": "none", "num_inference_steps": 8}
    ours = _psnr(mini(lq, upscale=4, generator=gen(0), **adapter_only).images[0], hq)
    base_only = _psnr(zero(lq, upscale=4, generator=gen(0), **adapter_only).images[0], hq)
    assert ours > base_only + ADAPTER_GAIN_DB, (ours, base_only)
    restored = mini(lq, upscale=4, num_inference_steps=8, generator=gen(0)).images[0]  # the pipeline's defaults
    assert restored.size == hq.size
    floor = _psnr(lq.resize(hq.size, Image.BICUBIC), hq)
    assert _psnr(restored, hq) > floor - BICUBIC_GAP_DB, (_psnr(restored, hq), floor)


@pytest.mark.parametrize("case", ["default", "no-rss-no-colour-fix", "tiles", "search", "beam", "sigmas"])
def test_the_shipped_model_restores_its_reference_outputs(mini, case):
    """Restorations written when the model shipped (`training.mini.reference`): sampler, RSS, colour fix, tiles,
    greedy and beam search, a given schedule. A change to what the pipeline computes fails here; 2 levels of 255
    allow for another CPU's rounding."""
    from training.mini.reference import REFERENCE_DIR, largest_difference, restore_case

    with Image.open(MINI_DIR / REFERENCE_DIR / f"{case}.png") as expected:
        assert largest_difference(restore_case(mini, case), expected) <= 2


def test_pipeline_follows_the_vae_factor(mini):
    assert mini.output_multiple == 2 * mini.vae_scale_factor == 2 ** len(mini.vae.config.block_out_channels)
    out = mini(Image.new("RGB", (20, 12), (120, 80, 40)), upscale=2, num_inference_steps=1, output_type="pt")
    assert out.images.shape[-2:] == (32, 48)  # 24x40 rounded to the VAE's multiple of 16


def test_build_refuses_to_overwrite_the_shipped_weights(capsys, tmp_path):
    from training.mini.build import main

    assert main(["--stages", "ship", "--work-dir", str(tmp_path / "work")]) == 2
    assert "already holds a mini model" in capsys.readouterr().err


def test_a_work_dir_takes_new_sampling_defaults_but_not_new_training_settings(tmp_path):
    from training.mini.build import MiniBuild
    from training.mini.config import MiniBuildConfig

    MiniBuild(MiniBuildConfig(), tmp_path, tmp_path / "out").check_setup()
    chosen = MiniBuildConfig()
    chosen.eval.sampling_defaults = {"num_inference_steps": 4}  # chosen after training: ship and eval rerun
    chosen.tasks.sampling_defaults = {"num_inference_steps": 1}
    MiniBuild(chosen, tmp_path, tmp_path / "out").check_setup()
    assert MiniBuildConfig.load(tmp_path).eval.sampling_defaults == {"num_inference_steps": 4}  # recorded
    retrained = MiniBuildConfig()
    retrained.adapter.steps += 1  # the trained adapter would no longer match its settings
    with pytest.raises(ValueError, match="holds a build with other settings"):
        MiniBuild(retrained, tmp_path, tmp_path / "out").check_setup()


def test_pretraining_loop_resumes_bit_exactly(tmp_path):
    from training.mini.loop import CosineSchedule, PlateauSchedule, train_steps

    def run(schedule, folder, evaluate=None):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 4)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)

        def step(index, generator):
            x = torch.randn(8, 4, generator=generator)
            return (model(x) - x.flip(-1)).pow(2).mean()

        result = train_steps("unit", model, optimizer, step, schedule, 0, folder, checkpoint_every=3,
                             evaluate=evaluate, eval_every=2)  # fmt: skip
        return result, model.weight.detach().clone()

    full, weight = run(CosineSchedule(total=10, peak=1e-2), tmp_path / "full")
    run(CosineSchedule(total=6, peak=1e-2), tmp_path / "split")  # "killed" after its step-6 checkpoint
    resumed, resumed_weight = run(CosineSchedule(total=10, peak=1e-2), tmp_path / "split")
    assert resumed.losses == full.losses and torch.equal(resumed_weight, weight)

    # a curve that rises, then flattens: the rate halves at each flat stretch, and the run stops itself once the
    # lowest rate has flattened too (measured every 2 steps, a window of 4 steps, at most 2 halvings)
    values = iter([1.0, 2.0, 3.0, 4.0, 4.05, 4.06, 4.5, 4.55, 4.56, 4.57] + [4.57] * 20)

    def plateau():
        return PlateauSchedule(peak=1e-2, monitor="psnr", max_steps=100, warmup=1, window=4, min_gain=0.1,
                               decays=2)  # fmt: skip

    result, _ = run(plateau(), tmp_path / "plateau", evaluate=lambda: {"psnr": next(values)})
    assert result.schedule["decayed_at"] == [10, 16] and result.schedule["stopped_at"] == 20
    assert len(result.losses) == 20 and [point["step"] for point in result.curve] == list(range(0, 21, 2))
    schedule = plateau()
    schedule.load_state_dict(result.schedule)
    assert schedule.lr(9) == 1e-2 and schedule.lr(10) == 5e-3 and schedule.lr(16) == 2.5e-3 and schedule.done(20)


def test_patches_skip_flat_regions_and_are_seeded():
    from training.mini.photos import FLAT_PATCH_STD, sample_patches

    half_flat = torch.cat([torch.zeros(3, 64, 64), torch.rand(3, 64, 64) * 2 - 1], dim=2)  # black left half
    a = sample_patches([half_flat], 64, 32, torch.Generator().manual_seed(3))
    b = sample_patches([half_flat], 64, 32, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # a third of the positions are all black; redrawn, almost none stay (0.34 ** 8 per patch)
    assert (a.flatten(1).std(dim=1) > FLAT_PATCH_STD).float().mean() > 0.95


def test_heldout_photos_never_reach_training(monkeypatch, tmp_path):
    """The VAE stage trains on the training split alone, without its validation photos; a held-out photo put into a
    training stage is refused."""
    from training.mini import build as build_module
    from training.mini import stages
    from training.mini.config import MiniBuildConfig
    from training.mini.photos import photo_names

    seen = []
    monkeypatch.setattr(
        build_module, "photos_as_tensors", lambda names, folder=None: seen.extend(names) or [torch.rand(3, 300, 300)]
    )
    monkeypatch.setattr(build_module.MiniBuild, "check_photos", lambda self: None)

    class Stop(Exception):
        """Raised where the VAE would start training: the photos it was given are already recorded."""

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(stages, "train_vae", stop)
    config = MiniBuildConfig(photo_set=2)
    build = build_module.MiniBuild(config, tmp_path, tmp_path / "out", tmp_path / "photos")
    with pytest.raises(Stop):
        build.run_vae()
    validation = config.vae.validation_photos
    trained = [n for n in seen if n not in validation and n not in photo_names("heldout")]
    assert trained == [n for n in photo_names("train", 2) if n not in validation]  # v2's photo set
    assert set(validation) <= set(photo_names("train", 2)) and len(photo_names("train", 2)) == 40
    seen.clear()
    with pytest.raises(Stop):  # photo set 3 adds the GCompris training photos, none of the held-out ones
        build_module.MiniBuild(MiniBuildConfig(photo_set=3), tmp_path / "v3", tmp_path / "out3").run_vae()
    trained = set(seen) - set(validation) - set(photo_names("heldout"))  # held-out photos: measured alongside
    assert trained == set(photo_names("train", 3)) - set(validation)
    assert {"cow", "tajMahal"} <= trained and not set(seen) & set(photo_names("texture"))
    config.vae.validation_photos = ["chelsea"]
    with pytest.raises(ValueError, match=r"Held-out photo\(s\) \['chelsea'\] may not enter a training stage"):
        build_module.MiniBuild(config, tmp_path, tmp_path / "out", tmp_path / "photos").run_vae()
    monkeypatch.setattr(build_module, "photo_names", lambda split, photo_set=None: ["rocket", "coffee"])
    with pytest.raises(ValueError, match="may not enter a training stage"):
        build.training_photos()


def test_the_photo_registry_records_source_licence_and_checksum():
    from training.mini.photos import PHOTOS, photo_names

    names = [p.name for p in PHOTOS]
    assert len(set(names)) == len(names) and not set(photo_names("train")) & set(photo_names("heldout"))
    heldout = set(photo_names("heldout"))
    assert {"astronaut", "chelsea", "coffee"} <= heldout and len(heldout) >= 6  # three of the new photos too
    for photo in PHOTOS:
        assert photo.credit and photo.licence and photo.split in ("train", "heldout", "texture")
        if photo.source == "debian":
            assert photo.package and photo.version and photo.path.startswith("/usr/share/")
            assert len(photo.sha256) == 64 and photo.file_name.endswith(photo.suffix)


def test_a_missing_or_altered_photo_says_how_to_get_it(tmp_path):
    from training.mini.photos import PhotoUnavailableError, load_photo

    with pytest.raises(PhotoUnavailableError, match="fluxir-build-mini --stages photos.*mate-backgrounds"):
        load_photo("Aqua", tmp_path)
    (tmp_path / "Aqua.jpg").write_bytes(b"not the photo")
    with pytest.raises(PhotoUnavailableError, match="not the registry's 'Aqua'.*fetch it again"):
        load_photo("Aqua", tmp_path)


def _fake_registry(monkeypatch, tmp_path, content: bytes):
    """One Debian photo whose package a fake `apt-get`/`dpkg` pair serves (with `content` as the file)."""
    import hashlib

    from training.mini import fetch_photos
    from training.mini.photos import Photo

    photo = Photo("Fake", "train", "debian", "/usr/share/backgrounds/fake.jpg", "nobody", "CC0-1.0", "fake-backgrounds",
                  "1.0-1", hashlib.sha256(b"the real photo").hexdigest())  # fmt: skip
    monkeypatch.setattr(fetch_photos, "PHOTOS", (photo,))
    unpack = (
        f'mkdir -p "$3/usr/share/backgrounds" && printf "{content.decode()}" > "$3/usr/share/backgrounds/fake.jpg"'
    )
    _fake_apt(monkeypatch, tmp_path, "fake-backgrounds_1.0-1_all.deb", unpack)
    return photo


def _fake_apt(monkeypatch, tmp_path, deb: str, unpack: str) -> None:
    """`apt-get download` that makes `deb`, and `dpkg -x` that runs `unpack` (`$3`: the folder), first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\ntouch "{deb}"\n')
    (bin_dir / "dpkg").write_text(f"#!/bin/sh\n{unpack}\n")
    for tool in ("apt-get", "dpkg"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def test_the_photos_stage_fetches_checks_and_keeps_what_is_there(monkeypatch, tmp_path):
    from training.mini.fetch_photos import PhotoFetchError, fetch_photos

    photo = _fake_registry(monkeypatch, tmp_path, b"the real photo")
    assert fetch_photos(tmp_path / "photos") == ["Fake"]
    assert (tmp_path / "photos" / photo.file_name).read_bytes() == b"the real photo"
    assert fetch_photos(tmp_path / "photos") == []  # already there with the right checksum: kept
    (tmp_path / "photos" / photo.file_name).write_bytes(b"damaged")
    assert fetch_photos(tmp_path / "photos") == ["Fake"]  # a wrong file is fetched again

    _fake_registry(monkeypatch, tmp_path / "other", b"another photo")
    with pytest.raises(PhotoFetchError, match="holds a different /usr/share/backgrounds/fake.jpg.*--photos-dir"):
        fetch_photos(tmp_path / "photos2")


def test_the_photos_stage_without_apt_says_which_package_and_how_to_supply_it(monkeypatch, tmp_path):
    from training.mini.fetch_photos import PhotoFetchError, fetch_photos

    _fake_registry(monkeypatch, tmp_path, b"x")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(PhotoFetchError) as err:
        fetch_photos(tmp_path / "photos")
    message = str(err.value)
    assert "apt-get and dpkg are not available" in message and "fake-backgrounds" in message
    assert str(tmp_path / "photos" / "Fake.jpg") in message and "--photos-dir" in message


def test_a_photos_dir_that_is_a_file_or_holds_a_folder_is_named(monkeypatch, tmp_path):
    from training.mini.fetch_photos import PhotoFetchError, fetch_photos

    photo = _fake_registry(monkeypatch, tmp_path, b"the real photo")
    a_file = tmp_path / "passwd"
    a_file.write_text("root:x:0:0")
    with pytest.raises(PhotoFetchError, match=f"--photos-dir {a_file} is a file, not a folder"):
        fetch_photos(a_file)
    (tmp_path / "photos" / photo.file_name).mkdir(parents=True)
    with pytest.raises(PhotoFetchError, match=f"holds folders where photo files belong \\({photo.file_name}\\)"):
        fetch_photos(tmp_path / "photos")


@pytest.mark.parametrize("scale", ["nan", "inf", "-1", "0"])
def test_build_scale_must_be_a_positive_number(tmp_path, capsys, scale):
    from training.mini.build import main

    assert main(["--scale", scale, "--work-dir", str(tmp_path / "w"), "--output-dir", str(tmp_path / "o")]) == 2
    assert "--scale must be a positive number" in capsys.readouterr().err


def _qt_bundle(files: dict[str, bytes], version: int = 3, compress: tuple[str, ...] = ()) -> bytes:
    """A compiled Qt resource bundle holding `files` (`"dir/name"` -> bytes) in one folder level, laid out as Qt's
    `rcc` writes it: header, names, data, then the tree of nodes (root, folders, files)."""
    import struct
    import zlib

    names, data, name_offsets = b"", b"", {}

    def name_offset(name: str) -> int:
        nonlocal names
        if name not in name_offsets:
            name_offsets[name] = len(names)
            names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
        return name_offsets[name]

    folders: dict[str, list[str]] = {}
    for path in files:
        folder, name = path.split("/")
        folders.setdefault(folder, []).append(name)
    node_size = 14 if version < 2 else 22
    tail = b"" if version < 2 else bytes(8)
    nodes = [struct.pack(">IHII", 0, 2, len(folders), 1) + tail]  # the root: a folder of folders
    first_file = 1 + len(folders)
    for folder, members in folders.items():
        nodes.append(struct.pack(">IHII", name_offset(folder), 2, len(members), first_file) + tail)
        first_file += len(members)
    for folder, members in folders.items():
        for name in members:
            content = files[f"{folder}/{name}"]
            flags = 0
            if name in compress:
                content, flags = struct.pack(">I", len(content)) + zlib.compress(content), 1
            nodes.append(struct.pack(">IHHHI", name_offset(name), flags, 0, 0, len(data)) + tail)
            data += struct.pack(">I", len(content)) + content
    header_size = 24 if version >= 3 else 20
    tree = b"".join(nodes)
    assert all(len(node) == node_size for node in nodes)
    offsets = (header_size, header_size + len(names), header_size + len(names) + len(data))  # names, data, tree
    header = b"qres" + struct.pack(">4I", version, offsets[2], offsets[1], offsets[0])
    return header + (struct.pack(">I", 0) if version >= 3 else b"") + names + data + tree


@pytest.mark.parametrize("version", [1, 3])
def test_photos_are_read_out_of_a_qt_resource_bundle(tmp_path, version):
    from training.mini.qt_resources import read_qt_resources

    files = {"animals/koala.webp": b"RIFF koala bytes", "animals/owl.webp": b"owl " * 50, "sounds/owl.ogg": b"hoot"}
    bundle = tmp_path / "bundle.rcc"
    bundle.write_bytes(_qt_bundle(files, version, compress=("owl.webp",)))
    assert read_qt_resources(bundle) == files  # nested folders, plain and zlib-compressed files, node sizes
    (tmp_path / "other.rcc").write_bytes(b"PK\x03\x04 a zip")
    with pytest.raises(ValueError, match="not a compiled Qt resource bundle"):
        read_qt_resources(tmp_path / "other.rcc")


def test_the_texture_set_is_held_out_and_fetched_out_of_its_bundle(monkeypatch, tmp_path):
    import hashlib

    from training.mini import fetch_photos
    from training.mini.photos import PHOTOS, Photo, check_training_photos, photo_names

    texture = photo_names("texture")
    assert len(texture) >= 10 and not set(texture) & (set(photo_names("train")) | set(photo_names("heldout")))
    with pytest.raises(ValueError, match="may not enter a training stage"):
        check_training_photos(photo_names("train")[:2] + texture[:1])
    assert all(p.member.endswith(".webp") and p.path.endswith(".rcc") for p in PHOTOS if p.split == "texture")
    # A package whose bundle holds the photo: only the member is kept, checked by its own sha256
    content = b"RIFF the koala"
    photo = Photo("koala", "texture", "debian", "/usr/share/app/rcc/animals.rcc", "someone", "CC0-1.0", "fake-data",
                  "1.0-1", hashlib.sha256(content).hexdigest(), "animals/koala.webp")  # fmt: skip
    monkeypatch.setattr(fetch_photos, "PHOTOS", (photo,))
    bundle = tmp_path / "animals.rcc"
    bundle.write_bytes(_qt_bundle({"animals/koala.webp": content, "animals/owl.webp": b"x"}))
    _fake_apt(
        monkeypatch,
        tmp_path,
        "fake-data_1.0-1_all.deb",
        f'mkdir -p "$3/usr/share/app/rcc" && cp "{bundle}" "$3/usr/share/app/rcc/"',
    )
    assert fetch_photos.fetch_photos(tmp_path / "photos") == ["koala"]
    assert (tmp_path / "photos" / "koala.webp").read_bytes() == content
    bundle.write_bytes(_qt_bundle({"animals/owl.webp": b"x"}))  # a package version without it: named, and what to do
    (tmp_path / "photos" / "koala.webp").unlink()
    with pytest.raises(
        fetch_photos.PhotoFetchError,
        match=r"does not hold animals/koala.webp.*animals/koala.webp out of .*animals.rcc",
    ):
        fetch_photos.fetch_photos(tmp_path / "photos")


def test_the_card_reports_both_held_out_sets():
    from training.mini.card import render_model_card
    from training.mini.config import MiniBuildConfig

    heldout = {"bicubic": {"PSNR": 23.16, "SSIM": 0.5327, "PIQE": 94.18}, "mini-fluxir": {"PSNR": 23.23}}
    texture = {"vae-round-trip": {"PSNR": 24.62}, "realesrgan": {"PIQE": 23.0}}
    card = render_model_card(MiniBuildConfig(photo_set=2), {"stages": {"eval": {**heldout, "texture": texture}}})
    standard, _, textured = card.partition("texture-rich held-out set")
    assert "| PSNR | n/a | 23.16 | n/a | 23.23 |" in standard and "24.62" not in standard
    assert "| PSNR | 24.62 | n/a | n/a | n/a |" in textured and "| PIQE | n/a | n/a | 23.00 | n/a |" in textured
    assert "| `koala` | texture |" in card  # the texture photos listed with their licences
    assert "| `cow` |" not in card and "on a CPU on 40 photos" in card  # photo set 2: only the photos it trained on
    assert "| `cow` | train |" in render_model_card(MiniBuildConfig(), {})  # the default, v3's set 3
