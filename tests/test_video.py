"""The imagination/episode video layout: frame count, size, coloured borders, step numbers, files."""

import numpy as np
import pytest

from world_models import video


def _frames(rng, *shape):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def test_imagination_video_has_one_frame_per_step_and_three_rows_per_column():
    rng = np.random.default_rng(0)
    B, T, H, W = 2, 7, 16, 12
    truth, model = _frames(rng, B, T, H, W, 3), _frames(rng, B, T, H, W, 3)
    out = video.imagination_video(truth, model, context=3)
    cell_h, cell_w = H + 2 * video.BORDER, W + 2 * video.BORDER
    assert out.shape == (T, 3 * cell_h + 2 * video.GAP, B * cell_w + (B - 1) * video.GAP, 3)
    assert out.dtype == np.uint8


def test_context_frames_are_framed_green_and_imagined_frames_red():
    rng = np.random.default_rng(1)
    T, H, W = 5, 10, 10
    out = video.imagination_video(_frames(rng, T, H, W, 3), _frames(rng, T, H, W, 3), context=2)
    for t in range(T):
        color = video.GREEN if t < 2 else video.RED
        # right and bottom borders of the truth cell (the top-left corner holds the step number)
        right = out[t, : H + 2 * video.BORDER, W + video.BORDER]
        bottom = out[t, H + video.BORDER, : W + 2 * video.BORDER]
        assert (right == color).all() and (bottom == color).all()


def test_rows_hold_truth_model_and_their_absolute_error():
    rng = np.random.default_rng(2)
    T, H, W = 3, 12, 12
    truth, model = _frames(rng, T, H, W, 3), _frames(rng, T, H, W, 3)
    out = video.imagination_video(truth, model, context=1)
    b, ch = video.BORDER, H + 2 * video.BORDER + video.GAP
    # compare away from the step number box: rows 8.., columns 8.. of each panel
    for row, expected in enumerate((truth, model, np.abs(truth.astype(int) - model.astype(int)).astype(np.uint8))):
        y0 = row * ch + b
        np.testing.assert_array_equal(out[:, y0 + 8 : y0 + H, b + 8 : b + W], expected[:, 8:H, 8:W])


def test_step_number_is_drawn_and_differs_between_steps():
    frame = np.full((20, 20, 3), 128, np.uint8)
    seven = video.draw_number(frame.copy(), 7)
    one = video.draw_number(frame.copy(), 1)
    assert (seven[1:6, 1:4, 0] == 255).sum() == 7  # the glyph of 7 has seven lit pixels
    assert not np.array_equal(seven[:7, :5], one[:7, :5])
    assert (seven[10:, 10:] == 128).all()  # nothing drawn outside the box


def test_floats_are_read_as_unit_interval():
    rng = np.random.default_rng(3)
    truth = rng.random((4, 8, 8, 3)).astype(np.float32)
    out_f = video.imagination_video(truth, truth, context=2)
    out_u = video.imagination_video((truth * 255 + 0.5).astype(np.uint8), (truth * 255 + 0.5).astype(np.uint8), context=2)
    np.testing.assert_array_equal(out_f, out_u)


def test_episode_video_pads_shorter_episodes_with_their_last_frame():
    rng = np.random.default_rng(4)
    a, b = _frames(rng, 5, 8, 8, 3), _frames(rng, 3, 8, 8, 3)
    out = video.episode_video([a, b])
    assert out.shape[0] == 5
    bd, cw = video.BORDER, 8 + 2 * video.BORDER + video.GAP
    np.testing.assert_array_equal(out[4, bd + 7 : bd + 8, cw + bd + 7 : cw + bd + 8], b[2, 7:8, 7:8])
    np.testing.assert_array_equal(out[4, bd + 7 : bd + 8, bd + 7 : bd + 8], a[4, 7:8, 7:8])


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_write_video_round_trips_frame_count_and_size(tmp_path, suffix):
    import imageio.v2 as imageio

    rng = np.random.default_rng(5)
    frames = video.imagination_video(_frames(rng, 6, 16, 16, 3), _frames(rng, 6, 16, 16, 3), context=3)
    path = video.write_video(tmp_path / f"v{suffix}", frames, fps=5)
    read = imageio.mimread(path, memtest=False)
    assert len(read) == 6
    assert read[0].shape[0] >= frames.shape[1] and read[0].shape[1] >= frames.shape[2]
    assert not list(tmp_path.glob(".*tmp*"))


def test_tensorboard_layout_is_1_T_C_H_W():
    frames = np.zeros((4, 10, 12, 3), np.uint8)
    assert video.tensorboard_video(frames).shape == (1, 4, 3, 10, 12)


def test_bad_inputs_raise_value_errors_naming_shapes():
    with pytest.raises(ValueError, match="same shape"):
        video.imagination_video(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((4, 8, 8, 3), np.uint8), 1)
    with pytest.raises(ValueError, match="context"):
        video.imagination_video(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 8, 8, 3), np.uint8), 5)
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        video.write_video("x.avi", np.zeros((2, 8, 8, 3), np.uint8))
