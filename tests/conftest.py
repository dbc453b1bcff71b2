import cv2
import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads():
    # CI machines have 2 cores; keep each test from oversubscribing them
    torch.set_num_threads(2)


@pytest.fixture
def one_thread():
    """Tiny networks run faster on one thread than on two shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def moving_square(h: int, w: int, x0: int, y0: int, size: int = 12, seed: int = 0) -> torch.Tensor:
    """A (1,3,H,W) frame: a textured square whose top-left corner is at (x0, y0) on a textured background."""
    g = torch.Generator().manual_seed(seed)
    background = 0.2 + 0.3 * torch.rand(1, 3, h // 4 + 1, w // 4 + 1, generator=g)
    background = torch.nn.functional.interpolate(background, size=(h, w), mode="bilinear", align_corners=False)
    tex = 0.6 + 0.4 * torch.rand(1, 3, size, size, generator=g)
    frame = background.clone()
    frame[:, :, y0:y0 + size, x0:x0 + size] = tex
    return frame


@pytest.fixture(scope="module")
def app_url():
    """The Gradio app, launched for one test module (the tests that use it skip without gradio)."""
    pytest.importorskip("gradio")  # gradio_app itself imports Gradio on first use only
    import gradio_app

    demo = gradio_app.launch(prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


@pytest.fixture
def frames_dir(tmp_path):
    """An input folder of four small frames, a square moving right."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        image = np.full((32, 48, 3), 60, np.uint8)
        image[8:20, 4 + 4 * i:16 + 4 * i] = 230
        cv2.imwrite(str(folder / f"{i}.png"), image)
    return folder
