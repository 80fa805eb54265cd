"""The "nanomap" false-colour map of the SPM-Toolbox PNG export, as a constant.

The map is monotonic in luminance (0.2989 R + 0.587 G + 0.114 B) with 255 levels; the grey value of
a pixel is the rank of its colour in this list, scaled by 255/254. The list is carried as a constant
(rather than rebuilt from the colours seen in whatever files a user converts) so a subset of frames
that never reaches some colour still converts to the same grey levels as the full set.
"""

from __future__ import annotations

import numpy as np

# 255 colours, darkest first, as RRGGBB hex triplets.
_NANOMAP_HEX = (
    "0000000201000402000603000804000a05000c06000e0700100800120900140a00160b00180c001a0d001c0e001e0f00"
    "2010002211002412002613002814002a15002c16002e1700301800321900341a00361b00381c003a1d003c1e003e1f00"
    "4020004221004422004623004824004a25004c26004e2700502800522900542a00562b00582c005a2d005c2e005e2f00"
    "6030006231006432006633006834006a35006c36006e3700703800723900743a00763b00783c007a3d007c3e007e3f00"
    "8140008341008542008743008944008b45008d46008f4700914800934900954a00974b00994c009b4d009d4e009f4f00"
    "a15000a35100a55200a75300a95400ab5500ad5600af5700b15800b35900b55a00b75b00b95c00bb5d00bd5e00bf5f00"
    "c16000c36100c56200c76300c96400cb6500cd6600cf6700d16800d36900d56a00d76b00d96c00db6d00dd6e00df6f00"
    "e17000e37100e57200e77300e97400eb7500ed7600ef7700f17800f37900f57a00f77b00f97c00fb7d00fd7e00ff7f00"
    "ff8000ff8102ff8204ff8306ff8408ff850aff860cff870eff8810ff8912ff8a14ff8b16ff8c18ff8d1aff8e1cff8f1e"
    "ff9020ff9122ff9224ff9326ff9428ff952aff962cff972eff9830ff9932ff9a34ff9b36ff9c38ff9d3aff9e3cff9f3e"
    "ffa040ffa142ffa244ffa346ffa448ffa54affa64cffa74effa850ffa952ffaa54ffab56ffac58ffad5affae5cffaf5e"
    "ffb060ffb162ffb264ffb366ffb468ffb56affb66cffb76effb870ffb972ffba74ffbb76ffbc78ffbd7affbe7cffbf7e"
    "ffc081ffc183ffc285ffc387ffc489ffc58bffc68dffc78fffc891ffc993ffca95ffcb97ffcc99ffcd9bffce9dffcf9f"
    "ffd0a1ffd1a3ffd2a5ffd3a7ffd4a9ffd5abffd6adffd7afffd8b1ffd9b3ffdab5ffdbb7ffdcb9ffddbbffdebdffdfbf"
    "ffe0c1ffe1c3ffe2c5ffe3c7ffe4c9ffe5cbffe6cdffe7cfffe8d1ffe9d3ffead5ffebd7ffecd9ffeddbffeeddffefdf"
    "fff0e1fff1e3fff2e5fff3e7fff4e9fff5ebfff6edfff7effff8f1fff9f3fffaf5fffbf7fffcf9fffdfbfffefd"
)

NANOMAP_RGB: np.ndarray = np.array(
    [
        [int(_NANOMAP_HEX[i + k : i + k + 2], 16) for k in (0, 2, 4)]
        for i in range(0, len(_NANOMAP_HEX), 6)
    ],
    dtype=np.uint8,
)
