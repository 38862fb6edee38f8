"""The real photos the mini model is trained and evaluated on, with where each comes from and its licence.

Three sources, all offline-installable: scikit-image's bundled colour photos, matplotlib's sample data, and the
photographs in Debian packages: wallpapers, and the animal and monument photos GCompris keeps in Qt resource bundles
(fetched with `apt-get download` + `dpkg -x` by the `photos` stage of `fluxir-build-mini`, or supplied by hand with
`--photos-dir`; every file's sha256 is checked against this registry).

Every photo is in exactly one split. `heldout` photos never enter any training stage (VAE, base generator, FluxGen,
adapter) and never choose a setting; they exist to measure restoration. The Space's examples are made from them.
`texture` photos (fur, feathers, foliage, carved stone) are held out the same way, as a second, texture-rich
measurement set: the wallpapers the stages train on are mostly landscapes and smooth surfaces.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

MAX_SIDE = 1024  # wallpapers are 1.3k-6k px: downscaled (Lanczos) to photo-like detail per pixel, as the held-out are


@dataclass(frozen=True)
class Photo:
    """One photo: `source` is `skimage` (`path` names the `skimage.data` function), `matplotlib` (`path` is a file of
    its sample data) or `debian` (`path` is the file inside `package` at `version`; with `member`, a file inside the
    Qt resource bundle at `path`)."""

    name: str
    split: str  # "train" or "heldout"
    source: str
    path: str
    credit: str
    licence: str
    package: str | None = None
    version: str | None = None
    sha256: str | None = None  # of the file as shipped (matplotlib, debian)
    member: str | None = None
    photo_set: int = 2  # training photos: the first `MiniBuildConfig.photo_set` that trains on it

    @property
    def suffix(self) -> str:
        return Path(self.member or self.path).suffix

    @property
    def file_name(self) -> str:
        """The name of its file in a photos folder (fetched or supplied by hand)."""
        return f"{self.name}{self.suffix}"


_MATE = ("mate-backgrounds", "1.26.0-1", "/usr/share/backgrounds/mate/nature/")
_PLASMA = ("plasma-workspace-wallpapers", "4:5.27.5-2", "/usr/share/wallpapers/")
_LOMIRI16 = ("lomiri-wallpapers-16.04", "20.04.0-2", "/usr/share/backgrounds/")
_LOMIRI20 = ("lomiri-wallpapers-20.04", "20.04.0-2", "/usr/share/backgrounds/")
_PLASMA_LICENCE = "GPL-2+ (Debian copyright file); LGPL-3 (the wallpaper's metadata.json)"
_GCOMPRIS = ("gcompris-qt-data", "3.1-2", "/usr/share/gcompris-qt/rcc/")
_GCOMPRIS_FILES = "GPL-3+ (Debian copyright file, `Files: *`)"


def _debian(release: tuple[str, str, str], name: str, file: str, credit: str, licence: str, sha: str,
            split: str = "train") -> Photo:  # fmt: skip
    package, version, folder = release
    return Photo(name, split, "debian", folder + file, credit, licence, package, version, sha)


def _mate(name: str, credit: str, sha: str, split: str = "train") -> Photo:
    return _debian(_MATE, name, f"{name}.jpg", credit, "GPL-2+", sha, split)


def _plasma(name: str, author: str, sha: str, split: str = "train") -> Photo:
    return _debian(
        _PLASMA, name, f"{name}/contents/images/2560x1600.jpg", f"{author} (KDE)", _PLASMA_LICENCE, sha, split
    )


def _lomiri(file: str, credit: str, licence: str, sha: str, split: str = "train", release: tuple = _LOMIRI16) -> Photo:
    return _debian(release, file.split("_by_")[0], file, credit, licence, sha, split)


def _gcompris(name: str, activity: str, folder: str, credit: str, licence: str, sha: str, split: str = "texture"
              ) -> Photo:  # fmt: skip
    """A photo of GCompris (`<activity>.rcc`, `<folder>/<name>.webp` inside it): held out in the texture set, or a
    training photo of photo set 3."""
    package, version, rcc_folder = _GCOMPRIS
    member = f"gcompris/src/activities/{activity}/resource/{folder}/{name}.webp"
    return Photo(name, split, "debian", f"{rcc_folder}{activity}.rcc", credit, licence, package, version, sha, member,
                 photo_set=3 if split == "train" else 2)  # fmt: skip


PHOTOS: tuple[Photo, ...] = (
    # scikit-image's colour photos (bundled with the package)
    Photo("rocket", "train", "skimage", "rocket", "SpaceX (DSCOVR launch on Falcon 9)", "public domain"),
    Photo("motorcycle_left", "train", "skimage", "stereo_motorcycle",
          "Middlebury 2014 stereo benchmark (Scharstein et al.), left view",
          "no licence stated; distributed with scikit-image (BSD-3-Clause)"),
    Photo("motorcycle_right", "train", "skimage", "stereo_motorcycle",
          "Middlebury 2014 stereo benchmark (Scharstein et al.), right view",
          "no licence stated; distributed with scikit-image (BSD-3-Clause)"),
    Photo("hubble_deep_field", "train", "skimage", "hubble_deep_field", "NASA / Hubble eXtreme Deep Field",
          "public domain (NASA media guidelines)"),
    Photo("immunohistochemistry", "train", "skimage", "immunohistochemistry",
          "Center for Microscopy And Molecular Imaging (CMMI)", "no known copyright restrictions"),
    Photo("retina", "train", "skimage", "retina", "Mikael Häggström, Wikimedia Commons", "CC0 1.0"),
    Photo("astronaut", "heldout", "skimage", "astronaut", "NASA (Eileen Collins)", "public domain"),
    Photo("chelsea", "heldout", "skimage", "chelsea", "Stefan van der Walt (Chelsea the cat)", "CC0"),
    Photo("coffee", "heldout", "skimage", "coffee", "Rachel Michetti, courtesy of Pikolo Espresso Bar", "CC0"),
    # matplotlib's sample data
    Photo("grace_hopper", "train", "matplotlib", "grace_hopper.jpg", "U.S. Navy (Rear Admiral Grace Hopper)",
          "public domain (U.S. government work)",
          sha256="a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130"),
    # Debian: mate-backgrounds, nature/ (Elephants is a painting; abstract/ and desktop/ hold no photographs)
    _mate("Aqua", "Charles Barbin", "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce"),
    _mate("Blinds", "Lennart Poettering, Andrea Cimitan",
          "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600"),
    _mate("Dune", "Marco Cogoni, Hylke Bons", "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91"),
    _mate("FreshFlower", "Jens Ansorg", "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e"),
    _mate("Garden", "Charles Barbin", "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78"),
    _mate("GreenMeadow", "Timothy Schellhase, Lapo Calamandrei",
          "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832"),
    _mate("LadyBird", "Charles Barbin", "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d"),
    _mate("RainDrops", '"blackcombwhistler07"', "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16"),
    _mate("Storm", "Sergey Nazarov", "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957"),
    _mate("TwoWings", "Charles Barbin, Hylke Bons", "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb"),
    _mate("Wood", "Jean-François Fortin Tam", "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07"),
    _mate("YellowFlower", "Charles Barbin", "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306"),
    # Debian: plasma-workspace-wallpapers (the photographs; the rest are illustrations)
    _plasma("BytheWater", "Maciej Wiklo", "c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f"),
    _plasma("ColdRipple", "Risto Saukonpää", "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f"),
    _plasma("ColorfulCups", "Dmitri Popov", "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d"),
    _plasma("DarkestHour", "Risto Saukonpää", "8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce"),
    _plasma("EveningGlow", "Ian Hex", "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a"),
    _plasma("FallenLeaf", "Martin Klapetek", "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de"),
    _plasma("Grey", "Sigi Sagi", "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed"),
    _plasma("Kite", "Risto Saukonpää", "bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8"),
    _plasma("OneStandsOut", "Risto Saukonpää", "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd"),
    _plasma("Path", "Risto Saukonpää", "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8",
            split="heldout"),
    _plasma("summer_1am", "Risto Saukonpää", "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8"),
    # Debian: lomiri-wallpapers-16.04 and -20.04 (analogpattern, umang and the other 20.04 files are not photographs)
    _lomiri("Bridge_by_Sander_Klootwijk.jpg", "Sander Klootwijk", "CC-BY-SA-4.0",
            "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050"),
    _lomiri("Dragonfly_by_Bolly.jpg", '"Bolly"', "CC-BY-SA-4.0",
            "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3"),
    _lomiri("Picture_0B_by_freespace.jpg", 'Trevor "Freespace"', "CC-BY-4.0",
            "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad"),
    _lomiri("Picture_1A_by_freespace.jpg", 'Trevor "Freespace"', "CC-BY-4.0",
            "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b", split="heldout"),
    _lomiri("Wine_by_Jakkub_Mede.jpg", "Jakub Mede", "CC-BY-4.0",
            "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74"),
    _lomiri("aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0",
            "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36"),
    _lomiri("free_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0",
            "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373"),
    _lomiri("friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0",
            "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d", split="heldout"),
    _lomiri("greentock_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0",
            "e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889"),
    _lomiri("life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0",
            "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05"),
    _lomiri("picosdeeuropa_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0",
            "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a", split="heldout"),
    _lomiri("seeding_by_Clements_Engelhardt.jpg", "Clemens Engelhardt", "CC0-1.0",
            "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f"),
    _lomiri("sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0",
            "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18"),
    _lomiri("Kleiber_by_Lukas_Baubkus.jpg", "Lukas Baubkus", "CC-BY-SA-3.0",
            "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7", release=_LOMIRI20),
    # Debian: gcompris-qt-data, the texture set (held out): fur, feathers, scales and leaves, carved stone
    _gcompris("sheep", "explore_farm_animals", "animals", "GCompris (Bruno Coudoin and others)", "GPL-3",
              "3bac61d5dabb709cdea2511f63bab6bfcde9736536a39f1f7510f5258a75b088"),
    _gcompris("dog", "explore_farm_animals", "animals", "GCompris (Bruno Coudoin and others)", "GPL-3",
              "5e9d9544495740101e4cfff817d986b683731112b2cf17fde2e4c2a26c3c5314"),
    _gcompris("owl", "explore_farm_animals", "animals", "GCompris (Bruno Coudoin and others)", "GPL-3",
              "e8b7d705a955799f02eb3e8ded6487991d2c5c8274fee828ac75c0b917b3e237"),
    _gcompris("koala", "explore_world_animals", "animals", "David Iliff (Wikimedia Commons)", "CC-BY-SA-3.0",
              "77b243c27d79f3f5706497af5c1e8e9134f87d634def2b81e2074b572b575d18"),
    _gcompris("lemur", "explore_world_animals", "animals", "Sannse (Wikimedia Commons)", "CC-BY-SA-3.0",
              "4fccf91dd5e6a749d9eb621f982e6a0d7072830db91ba0daabcd86b1de7a9747"),
    _gcompris("hedgehog", "explore_world_animals", "animals", "GCompris contributors", _GCOMPRIS_FILES,
              "780aceaa624415db1f6ff304ed13e804572686316e69d21ee0e13856ef173f7e"),
    _gcompris("jaguar", "explore_world_animals", "animals", "GCompris contributors", _GCOMPRIS_FILES,
              "22704727b6643480c62487ffb2d9fd618a3f499dde84b1eb789d4b0b11477e85"),
    _gcompris("chameleon", "explore_world_animals", "animals", "Laika ac (Wikimedia Commons)", "CC-BY-SA-2.0",
              "f3ececf0133c1301227fdea62d74bce7bcc0d138b048714b116aa4a0744260d5"),
    _gcompris("hawaMahal", "explore_monuments", "india", "GCompris contributors", _GCOMPRIS_FILES,
              "4edb7eed9db596bd7f3ad98eb34a82c04c32ff1d57aeec80a815c1248feb8e04"),
    _gcompris("ajantaCave", "explore_monuments", "india", "GCompris contributors", _GCOMPRIS_FILES,
              "7dbf980b3711f7557ed4d5748e494c48f72ac34ff601cf1a46f272ff9ab20543"),
    _gcompris("citedeCarcassonne", "explore_monuments", "france", "GCompris contributors", _GCOMPRIS_FILES,
              "b9de4b334e76df53df948de034f4bcc744be682a904ad7c61a9f9f7ac8de326b"),
    _gcompris("wormsCathedral", "explore_monuments", "germany", "GCompris contributors", _GCOMPRIS_FILES,
              "c90cdcbf981bcd5f118b553b059448db6fb0bfe801b40240e02ccd2975b92a59"),
    # Debian: gcompris-qt-data, training photos of photo set 3 (the other animals but GFDL's kangaroo, the monuments)
    _gcompris("cat", "explore_farm_animals", "animals", "GCompris (Bruno Coudoin and others)", "GPL-3",
              "ab7c3e1b04e80bc567b00dba49946918b5a38be1f37618f0d2b4887ef5792770", "train"),
    _gcompris("chicken", "explore_farm_animals", "animals", "GCompris (Bruno Coudoin and others)", "GPL-3",
              "30a07d3c7dfc191ff4d160826ad14babb4cfb9cb47b15ec8a098857f135bfcd4", "train"),
    _gcompris("cow", "explore_farm_animals", "animals", "GCompris (Bruno Coudoin and others)", "GPL-3",
              "db359136be5ef7c435a2521e7f782a7f13ab48634f8a955864b1557ca21926db", "train"),
    _gcompris("duck", "explore_farm_animals", "animals", "GCompris (Bruno Coudoin and others)", "GPL-3",
              "fa4572f2022a3aded4b627b9234fb8abf1658d125b267dc8d28cb1a8213c3b60", "train"),
    _gcompris("horse", "explore_farm_animals", "animals", "GCompris (Bruno Coudoin and others)", "GPL-3",
              "87879a9644b71713f52aadf22562f30cc3e6e25a36e07d602a90e0cf6ec888aa", "train"),
    _gcompris("pig", "explore_farm_animals", "animals", "GCompris (Bruno Coudoin and others)", "GPL-3",
              "4f3d27d1fd3d0b3c0482d72a7b62101c133329f95427dcb3fb1319e69d53b7c8", "train"),
    _gcompris("bison", "explore_world_animals", "animals", "GCompris contributors", _GCOMPRIS_FILES,
              "11f3b2c5b876ee083924ff3ffab233c3e1d161993605b67d4d2ab5a9f1d9cf25", "train"),
    _gcompris("crocodile", "explore_world_animals", "animals", "Kmanoj (Wikimedia Commons)", "CC-BY-3.0",
              "840cf54b69bf4fb9a14a99fe502e237ad36e7230c146ca884b7b0e444ec12534", "train"),
    _gcompris("dragon", "explore_world_animals", "animals", "Raul654 (Wikimedia Commons)", "CC-BY-SA-3.0",
              "fc36683cc2069ac83ae84f2da61c2774149d1a1dcb99820380b724ca50d3532e", "train"),
    _gcompris("giraffe", "explore_world_animals", "animals", "GCompris contributors", _GCOMPRIS_FILES,
              "68014ed783cf6a8b8c9c4202cf2c467a34819dab08bf566e93d5fcd872e41f5c", "train"),
# skip GFDL kangaroo
    _gcompris("moose", "explore_world_animals", "animals", "Ryan Hagerty (Wikimedia Commons)", "public-domain",
              "2252a671c2e0ade9ce6ff6d41957348a81ebccfd952ba59bfddceff0b059ea48", "train"),
    _gcompris("narwhal", "explore_world_animals", "animals", "GCompris contributors", _GCOMPRIS_FILES,
              "2a94d2fc7482ca806ce60210031f167782f7407ed47cd721371355e2ab575afc", "train"),
    _gcompris("panda", "explore_world_animals", "animals", "Aaron Logan (Wikimedia Commons)", "CC-BY-1.0",
              "70ccf9a9db5008100eb6955ae25fabd4f7769427be784d627cf6315f6dfce692", "train"),
    _gcompris("polar_bear", "explore_world_animals", "animals", "Arturo de Frias Marques (Wikimedia Commons)",
              "CC-BY-SA-4.0",
              "0544cef0a7d6940d3c143a04eecb7065bf9b90d7d367ad8bacbef6631b506070", "train"),
    _gcompris("scarlet_macaw", "explore_world_animals", "animals", "Jar0d (Wikimedia Commons)", "CC-BY-SA-2.0",
              "8b088ed71a87e7e929cf08b49a1e1c977c47544307d348e52a0f4a85128662a0", "train"),
    _gcompris("bentPyramid", "explore_monuments", "egypt", "GCompris contributors", _GCOMPRIS_FILES,
              "ca717a088d790a901ffa1b03162c5cc438f99924d457f988263f158a7cc2cb38", "train"),
    _gcompris("greatPyramidOfGiza", "explore_monuments", "egypt", "GCompris contributors", _GCOMPRIS_FILES,
              "f8427c09579493e7918d00134423ed40140c2f3fa09fb13341d3c1a0640fc1e9", "train"),
    _gcompris("meidumPyramid", "explore_monuments", "egypt", "GCompris contributors", _GCOMPRIS_FILES,
              "694a4eaebc52849aacf802383bc5c755c0fff97b8342a4ef733c7a36c6e6aa53", "train"),
    _gcompris("redPyramid", "explore_monuments", "egypt", "GCompris contributors", _GCOMPRIS_FILES,
              "7df87dfe904e18fee2062e8dba2cbfc5c7b807e27c688b271a7380000865c2cf", "train"),
    _gcompris("arlesAmphitheater", "explore_monuments", "france", "GCompris contributors", _GCOMPRIS_FILES,
              "62d80a80ca5e5040bdb87c6f2fb57fa333d9b190c9a41066e4017cd4268656d9", "train"),
    _gcompris("chateaudeChambord", "explore_monuments", "france", "GCompris contributors", _GCOMPRIS_FILES,
              "a96693bfff66c9a747a066b8d798aaf876427de969603c4125bf881f8af0ac2d", "train"),
    _gcompris("chateaudeChenonceau", "explore_monuments", "france", "GCompris contributors", _GCOMPRIS_FILES,
              "4e414fc35ae9b4e18e3219d6278287fb720e89facd332fef9a1c4fe9c3c3adc3", "train"),
    _gcompris("eiffelTower", "explore_monuments", "france", "GCompris contributors", _GCOMPRIS_FILES,
              "cf115ede228937f0dfea0ffd7efa5fa24a948f388091ce1a123e7636b25c080b", "train"),
    _gcompris("montStMichel", "explore_monuments", "france", "GCompris contributors", _GCOMPRIS_FILES,
              "1c097b958c4bc0e52384e572c3e3ed70abbb54e9b4936cd0852320e1ce12561e", "train"),
    _gcompris("palaisdesPapes", "explore_monuments", "france", "GCompris contributors", _GCOMPRIS_FILES,
              "fded6367850d2fafaf5ecad961ba51efbdc0c3d3171f7cc058d2ccfd2e6897e6", "train"),
    _gcompris("pontduGard", "explore_monuments", "france", "GCompris contributors", _GCOMPRIS_FILES,
              "b9e560a9ae2fd919baec7f5ceb08877d57194e614481b25058693a88c232897f", "train"),
    _gcompris("reimsCathedral", "explore_monuments", "france", "GCompris contributors", _GCOMPRIS_FILES,
              "720ddce0a3124d68e306008c152fb19ec2a2917b3609ba8a31607cffaf52c2d2", "train"),
    _gcompris("rocamadour", "explore_monuments", "france", "GCompris contributors", _GCOMPRIS_FILES,
              "e9642c03c23004248bcdf0a364d9828625ba5ef75f82e4a10bfdf2b16bd0a18c", "train"),
    _gcompris("aulaPalatina", "explore_monuments", "germany", "GCompris contributors", _GCOMPRIS_FILES,
              "5b39680425fca3ff5f56b3bd79d11683a46a009d66ef23445e165ea72524b3cb", "train"),
    _gcompris("berlinCathedral", "explore_monuments", "germany", "GCompris contributors", _GCOMPRIS_FILES,
              "b552994f64727ceaa04218d6a5e7a86b08cb8b550c1eeae0b010f857286d308e", "train"),
    _gcompris("brandenburgGate", "explore_monuments", "germany", "GCompris contributors", _GCOMPRIS_FILES,
              "2cb312c79a20e0cd8ed865c5b15a95af86d8d95a0ab96da8814c073857abf4bb", "train"),
    _gcompris("neuschwansteinCastle", "explore_monuments", "germany", "GCompris contributors", _GCOMPRIS_FILES,
              "15ec5fcb8758d54efa65581b9682e5cc766d700f3f329d700a06d0550d2c8e03", "train"),
    _gcompris("schwerinPalace", "explore_monuments", "germany", "GCompris contributors", _GCOMPRIS_FILES,
              "91be8dd19821221b2b3c30a78cb43a17d8017751a1d36acd751b1e9417acbbae", "train"),
    _gcompris("trierImperialBaths", "explore_monuments", "germany", "GCompris contributors", _GCOMPRIS_FILES,
              "dd1818360d153c095e227157d128e498fe9b29437594e8e5c663184cad4120fb", "train"),
    _gcompris("charminar", "explore_monuments", "india", "GCompris contributors", _GCOMPRIS_FILES,
              "a657a2139787bded963966d92b4ff9825327572e5e73d4badc1ac52cc063db0f", "train"),
    _gcompris("gatewayofIndia", "explore_monuments", "india", "GCompris contributors", _GCOMPRIS_FILES,
              "8d1053776a85a9703f819ae6a82f981cbfa9a8961712404afee235afd87a0e48", "train"),
    _gcompris("goldenTemple", "explore_monuments", "india", "GCompris contributors", _GCOMPRIS_FILES,
              "ec52355726f8c36c78f0db526dc0fd8c823f5572a5ced04e8914a82a7b496a8c", "train"),
    _gcompris("greatStupa", "explore_monuments", "india", "GCompris contributors", _GCOMPRIS_FILES,
              "3b6741152471d00646271d3a413c08af0533766f09dc87af19abb9ff71801886", "train"),
    _gcompris("konarkSunTemple", "explore_monuments", "india", "GCompris contributors", _GCOMPRIS_FILES,
              "c94ddb83bb2d878fecaf0677e8e6c1e73ede7dd39bd69f5e84d2f68e84515156", "train"),
    _gcompris("mysorePalace", "explore_monuments", "india", "GCompris contributors", _GCOMPRIS_FILES,
              "a84a26be8d9447341e5235dd319acc71a49f2d91c8dd55a17a89867c64a580c0", "train"),
    _gcompris("qutubMinar", "explore_monuments", "india", "GCompris contributors", _GCOMPRIS_FILES,
              "dea912cbd3950dacbba8cd810e39713525c27d54e58ce6ba7502a0f83cf24c95", "train"),
    _gcompris("rangGhar", "explore_monuments", "india", "GCompris contributors", _GCOMPRIS_FILES,
              "41791947f8772c9bf483ddb13a4fa4dfbbd1eef44f29937a99eebc5361d981a2", "train"),
    _gcompris("victoriaMemorial", "explore_monuments", "india", "GCompris contributors", _GCOMPRIS_FILES,
              "be7b3264cd3391e5b50714e0cec31f2e23e658498b5aba584a4b9aaf526dc51e", "train"),
    _gcompris("cabrillo", "explore_monuments", "usa", "GCompris contributors", _GCOMPRIS_FILES,
              "e109eb44fd12f853a4adfa0c30ca5a6bcc03205a58c9e6802b88886751d42277", "train"),
    _gcompris("canyondeChelly", "explore_monuments", "usa", "GCompris contributors", _GCOMPRIS_FILES,
              "2148fe45a54186a6e8bc4a395bbbffa0e3530e65232ceda5b841397a0d031bfb", "train"),
    _gcompris("castillodeSanMarcos", "explore_monuments", "usa", "GCompris contributors", _GCOMPRIS_FILES,
              "b1d3584272eb66d8211a9cb71a3647e88597986f8020eca9691c488282ea9a88", "train"),
    _gcompris("castleClinton", "explore_monuments", "usa", "GCompris contributors", _GCOMPRIS_FILES,
              "c36913b06cea891736c82132a9124d178c11a0b1e1f0d511e9f8158a8271ac62", "train"),
    _gcompris("fortSumter", "explore_monuments", "usa", "GCompris contributors", _GCOMPRIS_FILES,
              "42c8376f99f770fa9daa92afb8cde44dc58dd3282b10c5ba8fabec02ea4b9643", "train"),
    _gcompris("georgeWashingtonBirthplace", "explore_monuments", "usa", "GCompris contributors", _GCOMPRIS_FILES,
              "134f44b0e1c333202da337c73b6752db36fcbb5cb73e05cfcb4e5f4ff2fb4f43", "train"),
    _gcompris("lincolnMemorial", "explore_monuments", "usa", "GCompris contributors", _GCOMPRIS_FILES,
              "52eab4d110bd168e644c9152a60a911cdd8ba5e3d4b661e966f256a074f66fb8", "train"),
    _gcompris("mountRushmore", "explore_monuments", "usa", "GCompris contributors", _GCOMPRIS_FILES,
              "d9fec7d6ac491a64c5dab74fed447054e9d188dc9732715bef12bd63909e87c8", "train"),
    _gcompris("navajo", "explore_monuments", "usa", "GCompris contributors", _GCOMPRIS_FILES,
              "fa8d36162b1380ac7998ab32d82f7b86b390cdce830acd807ef314291cc03ee5", "train"),
    _gcompris("statueofLiberty", "explore_monuments", "usa", "GCompris contributors", _GCOMPRIS_FILES,
              "8eeda3c92c734520b4b7865eb04a900402a329890064058bcb4448d21669a3a8", "train"),
    _gcompris("chichenItza", "explore_monuments", "wonders", "GCompris contributors", _GCOMPRIS_FILES,
              "9882593801be435822f1d948afb36b171ed7fc7a301dfa74b11df5ea9afaf681", "train"),
    _gcompris("christTheRedeemer", "explore_monuments", "wonders", "GCompris contributors", _GCOMPRIS_FILES,
              "3133f2872b3d791595296fd4bf4812654326e01f5c7cd2d870765bfd6772fa2b", "train"),
    _gcompris("colosseum", "explore_monuments", "wonders", "GCompris contributors", _GCOMPRIS_FILES,
              "0d38a0c2d4910f895c003825999345a86da080ff76d709bba923153cbd654945", "train"),
    _gcompris("greatWallofChina", "explore_monuments", "wonders", "GCompris contributors", _GCOMPRIS_FILES,
              "546e2483d17c2b732ce375d946afba6fc612166abcd6d976217747a982b60777", "train"),
    _gcompris("machuPicchu", "explore_monuments", "wonders", "GCompris contributors", _GCOMPRIS_FILES,
              "e04e163ccef6e59411dff15c3459768b2f442fe2ff5042369d9a480f1f272068", "train"),
    _gcompris("petra", "explore_monuments", "wonders", "GCompris contributors", _GCOMPRIS_FILES,
              "cc782ccdd5b508299ad17402df2d0d375c26e1f9b18e4d2e6c3fd474fcaeb458", "train"),
    _gcompris("tajMahal", "explore_monuments", "wonders", "GCompris contributors", _GCOMPRIS_FILES,
              "fc0d45ec5a258568858c70d2d78eb23a5eb769255d74b384f70c20422d2eb351", "train"),
)  # fmt: skip
SPLITS = ("train", "heldout", "texture")
_BY_NAME = {photo.name: photo for photo in PHOTOS}


class PhotoUnavailableError(FileNotFoundError):
    """A registry photo that is not in the photos folder, or whose file is not the one the registry names."""


def get_photo(name: str) -> Photo:
    if name not in _BY_NAME:
        raise ValueError(f"Unknown photo {name!r}; known: {sorted(_BY_NAME)}.")
    return _BY_NAME[name]


def photo_names(split: str, photo_set: int | None = None) -> list[str]:
    """The photos of `split`; with `photo_set`, only the training photos that set includes (a build's
    `MiniBuildConfig.photo_set`: 2, the wallpapers and package photos of v2; 3 adds GCompris' animals and
    monuments)."""
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}.")
    return [p.name for p in PHOTOS if p.split == split and (photo_set is None or p.photo_set <= photo_set)]


def check_training_photos(names: list[str]) -> None:
    """Refuse a held-out photo (of either measurement set) anywhere a training stage reads photos."""
    heldout = sorted(set(names) - set(photo_names("train")))
    if heldout:
        raise ValueError(
            f"Held-out photo(s) {heldout} may not enter a training stage: they measure the model. Train on "
            f"photo_names('train') only."
        )


def default_photos_dir() -> Path:
    """Where fetched photos are cached: `$FLUXIR_PHOTOS_DIR`, else `~/.cache/fluxir_hub/photos`."""
    if os.environ.get("FLUXIR_PHOTOS_DIR"):
        return Path(os.environ["FLUXIR_PHOTOS_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fluxir_hub" / "photos"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def photo_file(photo: Photo, photos_dir: str | Path | None = None) -> Path:
    """The checked file of a matplotlib or Debian photo. Raises [`PhotoUnavailableError`] saying what to do when it
    is missing or its sha256 differs from the registry's."""
    if photo.source == "matplotlib":
        from matplotlib import cbook

        path = Path(cbook.get_sample_data(photo.path, asfileobj=False))
    else:
        path = Path(photos_dir or default_photos_dir()) / photo.file_name
        if not path.is_file():
            where = f"{photo.member} of the Qt bundle {photo.path}" if photo.member else photo.path
            raise PhotoUnavailableError(
                f"Photo {photo.name!r} is not in {path.parent}. Fetch it with `fluxir-build-mini --stages photos`, or "
                f"put {where} from the Debian package {photo.package} ({photo.version}) there as "
                f"{photo.file_name} and pass --photos-dir {path.parent}."
            )
    found = sha256_of(path)
    if found != photo.sha256:
        raise PhotoUnavailableError(
            f"{path} is not the registry's {photo.name!r} (sha256 {found[:12]}..., expected {photo.sha256[:12]}...). "
            "Delete it and fetch it again with `fluxir-build-mini --stages photos`."
        )
    return path


def downscale(image: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """Lanczos-downscale so the longer side is at most `max_side` (smaller images are kept as they are)."""
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.LANCZOS)


def load_photo(name: str, photos_dir: str | Path | None = None) -> Image.Image:
    """A registry photo as RGB PIL, at most [`MAX_SIDE`] px on its longer side (EXIF orientation applied)."""
    photo = get_photo(name)
    if photo.source == "skimage":
        try:
            from skimage import data
        except ImportError as err:
            raise ImportError("The mini model's photos need scikit-image: `pip install scikit-image`.") from err
        if name.startswith("motorcycle_"):
            left, right, _ = data.stereo_motorcycle()
            array = left if name.endswith("left") else right
        else:
            array = getattr(data, photo.path)()
        return downscale(Image.fromarray(np.ascontiguousarray(array[..., :3])).convert("RGB"))
    with Image.open(photo_file(photo, photos_dir)) as image:
        return downscale(ImageOps.exif_transpose(image).convert("RGB"))


def photos_as_tensors(names: list[str], photos_dir: str | Path | None = None) -> list[torch.Tensor]:
    """`(3, H, W)` float tensors in [-1, 1] (the VAE's range)."""
    return [
        torch.from_numpy(np.asarray(load_photo(n, photos_dir), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
        for n in names
    ]


FLAT_PATCH_STD = 0.04  # in [-1, 1] units: a patch this uniform (black sky, microscope background) teaches nothing


def sample_patches(
    photos: list[torch.Tensor],
    batch: int,
    size: int,
    generator: torch.Generator,
    augment: bool = True,
    max_tries: int = 8,
    channel_shuffle: bool = True,
) -> torch.Tensor:
    """
    `batch` random `size`-pixel square crops `(batch, 3, size, size)`, each from a photo drawn uniformly (so the large,
    mostly black astronomy and retina images do not dominate). With `augment`: random flips and 90-degree turns, and
    with `channel_shuffle` a random order of the colour channels. Nearly uniform crops are redrawn up to `max_tries`
    times.
    """
    out = []
    for _ in range(batch):
        photo = photos[int(torch.randint(len(photos), (1,), generator=generator))]
        for _ in range(max_tries):
            top = int(torch.randint(0, photo.shape[1] - size + 1, (1,), generator=generator))
            left = int(torch.randint(0, photo.shape[2] - size + 1, (1,), generator=generator))
            patch = photo[:, top : top + size, left : left + size]
            if patch.std() > FLAT_PATCH_STD:
                break
        if augment:
            flip, turns = (
                torch.randint(0, 2, (1,), generator=generator),
                torch.randint(0, 4, (1,), generator=generator),
            )
            if int(flip):
                patch = patch.flip(-1)
            patch = torch.rot90(patch, int(turns), dims=(1, 2))
            if channel_shuffle:
                patch = patch[torch.randperm(3, generator=generator)]
        out.append(patch)
    return torch.stack(out)
