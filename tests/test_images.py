"""Reading image files for tinynet.images: every kind scaled to [0, 1] by a stated rule,
multi-frame files never read by their first frame alone, and a decompression bomb refused
from its header, before a pixel is decoded."""

import numpy as np
import pytest
from bombs import png_zeros
from limits import UNAVAILABLE, run_limited

from tinynet import images

Image = pytest.importorskip("PIL.Image")


def _digit(value=1.0):
    """A 40x30 grey field (0) with a bright bar (``value``): a "1" seen light on dark."""
    a = np.zeros((40, 30), np.float32)
    a[8:32, 12:18] = value
    a[8:12, 8:12] = value
    return a


def test_a_float_image_in_0_1_is_taken_as_it_is_not_called_blank(tmp_path):
    Image.fromarray(_digit(0.8), "F").save(tmp_path / "f.tiff")
    grey = images.load_image(tmp_path / "f.tiff")
    np.testing.assert_allclose(grey, _digit(0.8))
    Image.fromarray((_digit(0.8) * 255).round().astype(np.uint8)).save(tmp_path / "u8.png")
    np.testing.assert_allclose(
        images.prepare_digit(grey), images.prepare_digit(images.load_image(tmp_path / "u8.png")), atol=0.01
    )


def test_a_float_image_outside_0_1_is_stretched_from_its_minimum_to_its_maximum(tmp_path):
    Image.fromarray(_digit(1.0) * 900.0 + 100.0, "F").save(tmp_path / "f.tiff")
    np.testing.assert_allclose(images.load_image(tmp_path / "f.tiff"), _digit(1.0), atol=1e-6)


def test_a_16_bit_image_is_divided_by_65535(tmp_path):
    Image.fromarray((_digit(0.5) * 65535).round().astype(np.uint16)).save(tmp_path / "i16.png")
    assert Image.open(tmp_path / "i16.png").mode.startswith("I")
    np.testing.assert_allclose(images.load_image(tmp_path / "i16.png"), _digit(0.5), atol=1e-4)


def test_a_float_image_of_nan_is_refused_by_name(tmp_path):
    a = _digit()
    a[0, 0] = np.nan
    Image.fromarray(a, "F").save(tmp_path / "nan.tiff")
    with pytest.raises(ValueError, match=r"nan\.tiff: the image holds NaN or infinite values"):
        images.load_image(tmp_path / "nan.tiff")


def _animation(path, values):
    frames = [Image.fromarray((_digit(v) * 255).astype(np.uint8)).convert("P") for v in values]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def test_a_multi_frame_image_is_never_read_by_its_first_frame_alone(tmp_path):
    path = tmp_path / "anim.gif"
    _animation(path, [0.0, 1.0, 0.5])  # a blank first frame, as drawing apps record
    with pytest.raises(ValueError, match=r"anim\.gif: the image holds 3 frames .* pass frame=k"):
        images.load_image(path)
    read = list(images.iter_frames(path))
    assert [(index, count) for index, count, _ in read] == [(0, 3), (1, 3), (2, 3)]
    assert [round(float(grey.max()), 1) for _, _, grey in read] == [0.0, 1.0, 0.5]
    np.testing.assert_array_equal(images.load_image(path, frame=1), read[1][2])
    with pytest.raises(ValueError, match="frame=3 asked for, the image holds 3 frame"):
        images.load_image(path, frame=3)
    with pytest.raises(TypeError, match="frame must be an int"):
        images.load_image(path, frame="1")


def test_each_page_of_a_tiff_is_read_at_its_own_size(tmp_path):
    pages = [Image.fromarray((_digit() * 255).astype(np.uint8)), Image.new("L", (64, 16), 200)]
    pages[0].save(tmp_path / "pages.tiff", save_all=True, append_images=pages[1:])
    shapes = [grey.shape for _, _, grey in images.iter_frames(tmp_path / "pages.tiff")]
    assert shapes == [(40, 30), (16, 64)]


def test_a_large_image_is_shrunk_by_a_whole_factor_before_it_is_prepared(tmp_path):
    (tmp_path / "big.png").write_bytes(png_zeros(5000, 3000))
    assert images.load_image(tmp_path / "big.png").shape == (1500, 2500)  # a factor of 2: 4096 on a side at most
    (tmp_path / "small.png").write_bytes(png_zeros(4096, 10))
    assert images.load_image(tmp_path / "small.png").shape == (10, 4096)


@pytest.mark.parametrize(  # Pillow only warns at 100 megapixels, and raises at 900 without the size
    "side, said", [(10_000, r"10000x10000 pixels \(100.0 megapixels\)"), (30_000, r"900.0 megapixels")]
)
def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, side, said):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_zeros(side, side))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match=rf"bomb\.png: the image is {said}, more than the 89.5 megapixels read"):
        images.load_image(path)


@pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE or "")
def test_the_bomb_costs_no_memory(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_zeros(30_000, 30_000))  # 900 MB of pixels, 0.9 MB of file
    code = f"""
try:
    images.load_image({str(path)!r})
except ValueError as e:
    print("refused:", e)
"""
    done = run_limited(code, 64 << 20, 60, setup="import numpy, PIL.Image; from tinynet import images")
    assert done.returncode == 0 and "refused:" in done.stdout, (done.figures(), done.stderr[-2000:])
    assert done.seconds < 5, done.figures()


def test_a_damaged_or_missing_file_is_named_once(tmp_path):
    Image.fromarray((_digit() * 255).astype(np.uint8)).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read it as an image") as info:
        images.load_image(tmp_path / "cut.png")
    assert str(info.value).count("cut.png") == 1
    with pytest.raises(ValueError, match=r"nowhere\.png: no such file"):
        images.load_image(tmp_path / "nowhere.png")
