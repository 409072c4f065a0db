"""The classic PyTorch linear-regression example, on trainkit: only the imports differ.

    python examples/linear_regression.py [--epochs 200]
"""
import argparse

import numpy as np

import trainkit as torch
import trainkit.nn as nn
import trainkit.optim as optim


class LinearRegression(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x):
        return self.linear(x)


def main(epochs: int = 200, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_np = rng.uniform(-1, 1, (100, 1)).astype(np.float32)
    y_np = (2.0 * x_np + 1.0 + rng.normal(0, 0.05, (100, 1))).astype(np.float32)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

    model = LinearRegression()
    criterion = nn.MSELoss()
    optimizer = optim.SGD(model.parameters(), lr=0.01)

    losses = []
    for epoch in range(epochs):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if (epoch + 1) % 50 == 0:
            print(f"epoch {epoch + 1}: loss {loss.item():.4f}")
    w, b = model.linear.weight.item(), model.linear.bias.item()
    print(f"learned y = {w:.3f} x + {b:.3f} (true: y = 2x + 1)")
    return losses


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=1000)
    main(p.parse_args().epochs)
