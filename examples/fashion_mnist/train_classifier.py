#!/usr/bin/python3
"""Trains the Fashion-MNIST classifier whose penultimate layer is the feature space of the fd_fmnist metric.

    nice -n 10 /usr/bin/python3 examples/fashion_mnist/train_classifier.py --work-dir runs/fmnist_classifier \
        --out assets/fashion_mnist/classifier.npz [--epochs 8] [--seed 0]

The network is an MLP on the flattened image (pixels in [-1, 1], as scoresde's fashion_mnist data):

    h1 = relu(W1 x + b1)   (512)
    f  = relu(W2 h1 + b2)  (256: the features of fd_fmnist)
    logits = W3 f + b3     (10)

An MLP because scoresde evaluates it with its own Eigen kernels (experiments/metrics/fmnist_features.hpp), so
that the metric needs no LibTorch. Adam (learning rate 1e-3, cosine decay over the epochs), batch 88, dropout 0.2
after each hidden layer during training, no augmentation (a shift changes what an MLP sees entirely); one
thread. The order of the training images in each epoch comes from a generator seeded by (seed, epoch), and the dropout masks from torch's global generator whose
state is saved in the checkpoint, so a run resumed from --work-dir (one checkpoint per epoch) ends with the same
weights as an uninterrupted one.

The export is an uncompressed .npz (numpy.savez) of float32 arrays W1 (512, 784), b1, W2 (256, 512), b2,
W3 (10, 256), b3 (nn.Linear's (out, in) layout), and beside it a JSON with the test accuracy, the command and the
seed.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist_data  # noqa: E402

HIDDEN = (512, 256)


class Classifier(torch.nn.Module):
    def __init__(self, dropout=0.2):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, HIDDEN[0])
        self.fc2 = torch.nn.Linear(HIDDEN[0], HIDDEN[1])
        self.fc3 = torch.nn.Linear(HIDDEN[1], 10)
        self.dropout = torch.nn.Dropout(dropout)

    def features(self, x):
        h = self.dropout(torch.relu(self.fc1(x.reshape(x.shape[0], -1))))
        return torch.relu(self.fc2(h))

    def forward(self, x):
        return self.fc3(self.dropout(self.features(x)))


def accuracy(net, images, labels):
    net.eval()
    with torch.no_grad():
        correct = sum(int((net(images[i:i + 1000]).argmax(1) == labels[i:i + 1000]).sum())
                      for i in range(0, images.shape[0], 1000))
    net.train()
    return correct / images.shape[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", required=True, help="checkpoints, one per epoch (resumes from the last)")
    parser.add_argument("--out", required=True, help="the exported weights (.npz); a .json is written beside")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=88)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=fmnist_data.DEFAULT_DIR)
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.work_dir, exist_ok=True)
    checkpoint_path = os.path.join(args.work_dir, "classifier_checkpoint.pt")

    train_x, train_y = (torch.from_numpy(a) for a in fmnist_data.load("train", args.data_dir))
    test_x, test_y = (torch.from_numpy(a) for a in fmnist_data.load("test", args.data_dir))

    torch.manual_seed(args.seed)
    net = Classifier()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 * (1 + math.cos(math.pi * e / args.epochs)))
    start_epoch, history, seconds = 0, [], 0.0
    if os.path.exists(checkpoint_path):
        state = torch.load(checkpoint_path)
        if state["args"]["seed"] != args.seed or state["args"]["epochs"] != args.epochs:
            raise SystemExit(f"{checkpoint_path}: written with seed {state['args']['seed']} and "
                             f"{state['args']['epochs']} epochs; use another --work-dir")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["rng"])
        start_epoch, history, seconds = state["epoch"], state["history"], state["seconds"]
        print(f"resuming after epoch {start_epoch}")

    n = train_x.shape[0]
    for epoch in range(start_epoch, args.epochs):
        began = time.time()
        gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, args.batch_size):
            idx = order[i:i + args.batch_size]
            x = train_x[idx]
            loss = torch.nn.functional.cross_entropy(net(x), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * idx.numel()
        sched.step()
        seconds += time.time() - began
        test_acc = accuracy(net, test_x, test_y)
        history.append({"epoch": epoch + 1, "train_loss": total / n, "test_accuracy": test_acc})
        print(f"epoch {epoch + 1}: loss {total / n:.4f}, test accuracy {test_acc:.4f} ({seconds:.0f} s)", flush=True)
        tmp = checkpoint_path + ".tmp"
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "rng": torch.get_rng_state(), "epoch": epoch + 1, "history": history, "seconds": seconds,
                    "args": vars(args)}, tmp)
        os.replace(tmp, checkpoint_path)

    test_acc = accuracy(net, test_x, test_y)
    train_acc = accuracy(net, train_x, train_y)
    arrays = {"W1": net.fc1.weight, "b1": net.fc1.bias, "W2": net.fc2.weight, "b2": net.fc2.bias,
              "W3": net.fc3.weight, "b3": net.fc3.bias}
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.out + ".tmp.npz"
    np.savez(tmp, **{k: v.detach().numpy().astype(np.float32) for k, v in arrays.items()})
    os.replace(tmp, args.out)
    record = {"network": "MLP 784-512-256-10, ReLU; features: the 256 post-ReLU units of the second layer",
              "input": "28x28 image flattened row by row, pixels p / 127.5 - 1 in [-1, 1]",
              "test_accuracy": test_acc, "train_accuracy": train_acc,
              "command": "/usr/bin/python3 examples/fashion_mnist/train_classifier.py " + " ".join(sys.argv[1:]),
              "seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
              "train_seconds": round(seconds, 1), "threads": 1, "torch": torch.__version__,
              "history": history}
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: test accuracy {test_acc:.4f}, train accuracy {train_acc:.4f}")


if __name__ == "__main__":
    main()
