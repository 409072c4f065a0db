"""The classic PyTorch CIFAR-10 LeNet tutorial, on trainkit: only the imports differ.

    python examples/cifar_cnn.py --root ../shared/data --epochs 2
"""
import argparse

import trainkit as torch
import trainkit.data.datasets as datasets
import trainkit.data.transforms as transforms
import trainkit.nn as nn
import trainkit.nn.functional as F
import trainkit.optim as optim
from trainkit.utils.data import DataLoader


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


def main(root: str = "./data", epochs: int = 2, batch_size: int = 32, download: bool = False, seed: int = 0,
         lr: float = 0.001):
    torch.manual_seed(seed)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    trainset = datasets.CIFAR10(root=root, train=True, download=download, transform=transform)
    trainloader = DataLoader(trainset, batch_size=batch_size, shuffle=True, seed=seed)
    testset = datasets.CIFAR10(root=root, train=False, download=download, transform=transform)
    testloader = DataLoader(testset, batch_size=batch_size, shuffle=False)

    net = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=lr, momentum=0.9)

    for epoch in range(epochs):
        running_loss = 0.0
        for i, data in enumerate(trainloader, 0):
            inputs, labels = data
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            if i % 500 == 499:
                print(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss / 500:.3f}")
                running_loss = 0.0

    correct = 0
    total = 0
    with torch.no_grad():
        for data in testloader:
            images, labels = data
            outputs = net(images)
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    print(f"Accuracy of the network on the {total} test images: {100 * correct // total} %")
    return correct / total


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--root", default="./data")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--download", action="store_true")
    a = p.parse_args()
    main(a.root, a.epochs, a.batch_size, a.download)
