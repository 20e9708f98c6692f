import cv2
import numpy as np
import pytest

from siammask.synthetic import make_sequence, write_image_folder, write_video


@pytest.fixture(scope="module")
def frames():
    return make_sequence(num_frames=60, size=(320, 240), seed=3)


def _centre(box):
    x, y, w, h = box
    return np.array([x + w / 2, y + h / 2])


def test_same_seed_gives_identical_sequence_and_other_seed_differs():
    a = make_sequence(num_frames=5, seed=7)
    b = make_sequence(num_frames=5, seed=7)
    c = make_sequence(num_frames=5, seed=8)
    for fa, fb in zip(a, b):
        assert np.array_equal(fa.image, fb.image)
        assert np.array_equal(fa.mask, fb.mask)
        assert fa.box == fb.box
    assert not np.array_equal(a[0].image, c[0].image)


def test_size_is_width_by_height_and_types_match_contract():
    seq = make_sequence(num_frames=3, size=(200, 150))
    assert len(seq) == 3
    for frame in seq:
        assert frame.image.shape == (150, 200, 3) and frame.image.dtype == np.uint8
        assert frame.mask.shape == (150, 200) and frame.mask.dtype == bool
        assert all(isinstance(v, float) for v in frame.box)


def test_box_is_exactly_the_mask_bounding_box(frames):
    for frame in frames:
        rows, cols = np.nonzero(frame.mask)
        expected = (cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)
        assert frame.box == tuple(float(v) for v in expected)


def test_object_stays_inside_the_frame(frames):
    for frame in frames:
        x, y, w, h = frame.box
        assert x >= 1 and y >= 1 and x + w <= 319 and y + h <= 239
        assert not frame.mask[[0, -1], :].any() and not frame.mask[:, [0, -1]].any()


def test_object_moves_smoothly_and_far(frames):
    centres = np.array([_centre(f.box) for f in frames])
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert np.linalg.norm(centres - centres[0], axis=1).max() > 60
    assert steps.max() < 8
    assert steps.mean() > 1


def test_object_scale_changes_mildly(frames):
    areas = np.array([f.mask.sum() for f in frames])
    assert 1.05 < areas.max() / areas.min() < 1.8


def test_object_and_background_textures_differ(frames):
    frame = frames[0]
    obj = frame.image[frame.mask].astype(float)
    bg = frame.image[~frame.mask].astype(float)
    assert np.linalg.norm(obj.mean(axis=0) - bg.mean(axis=0)) > 60
    assert obj.std(axis=0).min() > 10, "object should be textured, not flat"
    assert bg.std(axis=0).min() > 10, "background should be textured, not flat"


def test_object_texture_moves_with_the_object(frames):
    """Template matching frame t's object in frame t+1 lands on the true box: the sequence is trackable."""
    for t in (0, 20, 40):
        x, y, w, h = (int(v) for v in frames[t].box)
        template = frames[t].image[y : y + h, x : x + w]
        scores = cv2.matchTemplate(frames[t + 1].image, template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (bx, by) = cv2.minMaxLoc(scores)
        found = np.array([bx + w / 2, by + h / 2])
        assert best > 0.6
        assert np.linalg.norm(found - _centre(frames[t + 1].box)) < 4


def test_rejects_impossible_requests():
    with pytest.raises(ValueError, match="under 8 px"):
        make_sequence(num_frames=2, size=(20, 20))
    with pytest.raises(ValueError, match="too small to move"):
        make_sequence(num_frames=2, size=(40, 40), object_size=0.9)
    with pytest.raises(ValueError, match="num_frames"):
        make_sequence(num_frames=0)


def test_image_folder_is_numbered_png_and_lossless(tmp_path, frames):
    folder = write_image_folder(frames[:5], tmp_path / "seq")
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:05d}.png" for i in range(5)]
    for i, frame in enumerate(frames[:5]):
        assert np.array_equal(cv2.imread(str(folder / f"{i:05d}.png")), frame.image)


def test_video_reads_back_every_frame_nearly_unchanged(tmp_path, frames):
    path = write_video(frames[:10], tmp_path / "clip.avi", fps=30.0)
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
    decoded = []
    while (result := capture.read())[0]:
        decoded.append(result[1])
    capture.release()
    assert len(decoded) == 10
    for image, frame in zip(decoded, frames):
        assert np.abs(image.astype(int) - frame.image).mean() < 2.0
