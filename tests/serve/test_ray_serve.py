"""The app as a Ray Serve deployment with 2 replicas on a local Ray instance: requests reach both, and every
answer is bit-exact."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serve_helpers import TILE, decoded, free_port, png_bytes, random_image, reference

import httpx  # noqa: E402

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'srgan_fast[serve-ray]')")
pytestmark = pytest.mark.slow  # every test here starts Ray Serve: 15 s on 2 cores before the first

import ray  # noqa: E402
from ray import serve  # noqa: E402

from srgan_fast.serve.ray_serve import APP_NAME, serve_application  # noqa: E402


@pytest.fixture(scope="module")
def ray_url(tiny_weights, tmp_path_factory):
    from srgan_fast.weights import save_weights

    model = tmp_path_factory.mktemp("ray") / "tiny.safetensors"
    save_weights(model, tiny_weights.tensors, tiny_weights.metadata)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False,
             runtime_env={"env_vars": {"OMP_WAIT_POLICY": "passive"}})
    port = free_port()  # after Ray's own processes have taken theirs
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        options = dict(models=[str(model)], backend="native", tile=TILE)
        serve.run(serve_application(options, replicas=2), name=APP_NAME, route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def test_two_replicas_share_requests_and_answer_exactly(ray_url, tiny_weights):
    assert httpx.get(f"{ray_url}/readyz", timeout=60).json()["models"] == [tiny_weights.name]
    rng = np.random.default_rng(11)
    images = [random_image(rng, 30 + 7 * (i % 4), 40, (3, 4, 1)[i % 3]) for i in range(24)]

    def post(image):
        return httpx.post(f"{ray_url}/v1/upscale", content=png_bytes(image), timeout=120)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, images))
    servers = set()
    for image, answer in zip(images, answers):
        assert answer.status_code == 200, answer.text
        assert np.array_equal(decoded(answer.content), reference(image, tiny_weights))
        servers.add(answer.headers["x-srgan-server"])
    assert len(servers) == 2, f"answers came from {servers}"
    refused = httpx.post(f"{ray_url}/v1/upscale", content=b"not an image", timeout=60)
    assert refused.status_code == 400 and "unreadable" in refused.json()["error"]
