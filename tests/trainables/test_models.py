import pytest
import torch

from hardware.profiler import profile_model
from hardware.specs import tie_leaders
from trainables.models import MODELS, create_model



def make(name, channels, size, classes=10):
    torch.manual_seed(0)
    return create_model(name, in_channels=channels, num_classes=classes, image_shape=(channels, size, size))


def test_registry_names():
    assert sorted(MODELS) == ["lenet5", "mlp", "resnet20"]
    with pytest.raises(ValueError, match="vgg16.*lenet5.*mlp.*resnet20"):
        create_model("vgg16", in_channels=1, num_classes=10, image_shape=(1, 28, 28))


def test_lenet5_counts_on_28x28():
    # conv1 20*1*25 = 500 weights x 24*24; conv2 50*20*25 = 25,000 x 8*8; fc1 800*500; fc2 500*10
    specs = profile_model(make("lenet5", 1, 28), (1, 28, 28))
    assert [s.name for s in specs] == ["conv1", "conv2", "fc1", "fc2"]
    assert [s.weights for s in specs] == [500, 25_000, 400_000, 5_000]
    assert sum(s.weights for s in specs) == 430_500
    assert sum(s.macs for s in specs) == 288_000 + 1_600_000 + 400_000 + 5_000 == 2_293_000
    assert specs[2].producer == "conv2" and specs[2].input_channel_multiplier == 16
    assert not specs[3].prunable_outputs


def test_lenet5_image_size():
    assert make("lenet5", 3, 32)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)  # fc1 reads 50 x 5 x 5
    with pytest.raises(ValueError, match="8x8 is too small.*mlp"):
        make("lenet5", 1, 8)
    with pytest.raises(ValueError, match="3 channels but in_channels=1"):
        create_model("lenet5", in_channels=1, num_classes=10, image_shape=(3, 28, 28))


@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32)])
def test_resnet20_forward_and_size(channels, size):
    model = make("resnet20", channels, size)
    assert model(torch.zeros(2, channels, size, size)).shape == (2, 10)
    specs = profile_model(model, (channels, size, size))
    # stem 9c*16 + stage 1: 6 x 2,304 + stage 2: 4,608 + 512 + 5 x 9,216 + stage 3: 18,432 + 2,048
    # + 5 x 36,864 + fc 640
    assert sum(s.weights for s in specs) == 144 * channels + 13_824 + 51_200 + 204_800 + 640
    assert len(specs) == 22 and all(s.norm_channels == s.out_channels for s in specs if s.kind == "conv")


def test_resnet20_wiring():
    specs = profile_model(make("resnet20", 3, 32), (3, 32, 32))
    by_name = {s.name: s for s in specs}
    groups = {}
    for spec in specs:
        groups.setdefault(spec.tie_group, set()).add(spec.name)
    assert groups["conv1"] == {"conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"}
    for stage in (2, 3):  # groups are named after their leader
        assert groups[f"layer{stage}.0.conv2"] == {f"layer{stage}.0.shortcut.0"} | {f"layer{stage}.{b}.conv2" for b in range(3)}
    leaders = tie_leaders(specs)
    assert {leaders[f"layer{s}.2.conv2"] for s in (1, 2, 3)} == {"conv1", "layer2.0.conv2", "layer3.0.conv2"}
    stream_read_by_stage = {1: "conv1", 2: "layer2.0.conv2", 3: "layer3.0.conv2"}
    for stage in (1, 2, 3):
        # a block's conv1 reads the stream it sits on: the previous stage's for a downsampling block
        for block in range(3):
            reads = stream_read_by_stage[stage - 1 if block == 0 and stage > 1 else stage]
            assert by_name[f"layer{stage}.{block}.conv1"].producer == reads
            assert by_name[f"layer{stage}.{block}.conv2"].producer == f"layer{stage}.{block}.conv1"
    assert by_name["layer3.0.shortcut.0"].producer == "layer2.0.conv2"
    assert by_name["fc"].producer == "layer3.0.conv2" and not by_name["fc"].prunable_outputs
    assert by_name["conv1"].producer is None
    for spec in specs:  # every producer makes exactly the channels its consumer reads
        if spec.producer is not None:
            produced = by_name[spec.producer].out_channels * spec.input_channel_multiplier
            assert produced == spec.in_channels, spec.name


def test_mlp_forward_and_chain_profile():
    model = make("mlp", 1, 8)
    assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    specs = profile_model(model, (1, 8, 8))
    assert [(s.name, s.in_channels, s.out_channels) for s in specs] == [("fc1", 64, 64), ("fc2", 64, 32),
                                                                         ("fc3", 32, 10)]


def test_bad_sizes_rejected():
    with pytest.raises(ValueError, match="num_classes=0"):
        create_model("mlp", in_channels=1, num_classes=0, image_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="image_shape"):
        create_model("mlp", in_channels=1, num_classes=10, image_shape=(8, 8))
