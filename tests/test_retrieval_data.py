"""Retrieval data sets in their native layouts: class-disjoint splits, validation carved from the
training classes, contiguous labels, clear errors; and the real cub100 subset."""
import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from trackformer.builtin_plugins.retrieval import RetrievalDataConfig
from trackformer.data.retrieval import build, resolve_root
from trackformer.errors import DataError


def cfg(root, **kw):
    return OmegaConf.structured(RetrievalDataConfig(root=str(root), image_size=32, resize=36, **kw))


def write_image(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (value, 0, 0)).save(path)


@pytest.fixture
def cub_root(tmp_path):
    """CUB-200-2011's own format: 1-based ids, space separated, 4 classes x 3 images."""
    root = tmp_path / "CUB_200_2011"
    images, labels = [], []
    for c in range(1, 5):
        for j in range(3):
            i = len(images) + 1
            rel = f"{c:03d}.Bird_{c}/img_{j}.jpg"
            write_image(root / "images" / rel, 40 * c)
            images.append(f"{i} {rel}")
            labels.append(f"{i} {c}")
    (root / "images.txt").write_text("\n".join(images) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "classes.txt").write_text("\n".join(f"{c} {c:03d}.Bird_{c}" for c in range(1, 5)) + "\n")
    return root


def test_cub_first_half_of_classes_trains(cub_root):
    train = build(cfg(cub_root), "train", "cub")
    test = build(cfg(cub_root), "test", "cub")
    assert set(train.class_ids) == {1, 2} and set(test.class_ids) == {3, 4}
    assert len(train) == 6 and len(test) == 6
    assert train.info["num_classes"] == 2 and train.info["classes"] == ["001.Bird_1", "002.Bird_2"]
    assert build(cfg(cub_root), "val", "cub") is None
    image, label = test[4]
    assert tuple(image.shape) == (3, 32, 32) and label == 1  # class 4 -> contiguous label 1


def test_validation_is_carved_from_training_classes(cub_root):
    c = cfg(cub_root, val_classes=1)
    train, val, test = (build(c, s, "cub") for s in ("train", "val", "test"))
    assert set(train.class_ids) == {1} and set(val.class_ids) == {2} and set(test.class_ids) == {3, 4}


def test_train_split_gets_pk_sampler(cub_root):
    train = build(cfg(cub_root, samples_per_class=3), "train", "cub")
    sampler = train.batch_sampler(6, seed=0, rank=0, world_size=1)
    for batch in sampler:
        assert sorted(np.bincount(train.labels[batch]).tolist()) == [3, 3]


def test_missing_root_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(DataError) as error:
        resolve_root(str(tmp_path / "nope"))
    assert str(error.value) == f"{tmp_path / 'nope'}: data set folder not found; set data.root=<folder>"
    monkeypatch.chdir(tmp_path)  # relative roots are relative to the working directory, nothing else
    (tmp_path / "here").mkdir()
    assert resolve_root("here") == tmp_path / "here"
    with pytest.raises(DataError) as error:
        resolve_root("../shared/data/cub100")
    assert str(error.value) == (f"../shared/data/cub100: data set folder not found (relative to the working "
                                f"directory {tmp_path}); set data.root=<folder>")


def test_missing_index_file_names_it(cub_root):
    (cub_root / "image_class_labels.txt").unlink()
    with pytest.raises(DataError, match="image_class_labels.txt"):
        build(cfg(cub_root), "train", "cub")


def test_sop_layout(tmp_path):
    root = tmp_path / "Stanford_Online_Products"
    header = "image_id class_id super_class_id path\n"
    rows = {"train": [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)], "test": [(6, 4), (7, 4), (8, 5)]}
    for split, items in rows.items():
        lines = []
        for i, c in items:
            write_image(root / "bicycle_final" / f"{i}.JPG")
            lines.append(f"{i} {c} 1 bicycle_final/{i}.JPG")
        (root / f"Ebay_{split}.txt").write_text(header + "\n".join(lines) + "\n")
    train = build(cfg(root, val_classes=1), "train", "sop")
    val = build(cfg(root, val_classes=1), "val", "sop")
    test = build(cfg(root), "test", "sop")
    assert set(train.class_ids) == {1, 2} and set(val.class_ids) == {3} and set(test.class_ids) == {4, 5}


def test_inshop_layout_marks_queries(tmp_path):
    root = tmp_path / "inshop"
    rows = [("img/a/1.jpg", "id_00000001", "train"), ("img/a/2.jpg", "id_00000001", "train"),
            ("img/b/1.jpg", "id_00000002", "query"), ("img/b/2.jpg", "id_00000002", "gallery"),
            ("img/c/1.jpg", "id_00000003", "gallery")]
    for path, _, _ in rows:
        write_image(root / path)
    text = f"{len(rows)}\nimage_name item_id evaluation_status\n" + "\n".join(" ".join(r) for r in rows)
    (root / "list_eval_partition.txt").write_text(text + "\n")
    test = build(cfg(root), "test", "inshop")
    assert len(test) == 3 and test.is_query.tolist() == [True, False, False]
    assert len(build(cfg(root), "train", "inshop")) == 2


def test_image_folder_and_cars196(tmp_path):
    folder = tmp_path / "folder"
    for c in "abcd":
        for j in range(2):
            write_image(folder / c / f"{j}.png")
    assert set(build(cfg(folder), "test", "folder").info["classes"]) == {"c", "d"}
    assert len(build(cfg(folder), "train", "folder")) == 4

    from scipy.io import savemat

    cars = tmp_path / "cars"
    annos = np.zeros((1, 8), dtype=[("relative_im_path", "O"), ("class", "O")])
    for i in range(8):
        write_image(cars / "car_ims" / f"{i:06d}.jpg")
        annos[0, i] = (f"car_ims/{i:06d}.jpg", np.array([[1 + i // 2]], dtype=np.uint8))
    savemat(cars / "cars_annos.mat", {"annotations": annos})
    train, test = build(cfg(cars), "train", "cars196"), build(cfg(cars), "test", "cars196")
    assert set(train.class_ids) == {1, 2} and set(test.class_ids) == {3, 4}


def test_real_cub100_split(shared_dir):
    root = shared_dir / "data" / "cub100"
    c = cfg(root, val_classes=10)
    train, val, test = (build(c, s, "cub") for s in ("train", "val", "test"))
    assert set(train.class_ids) == set(range(40)) and set(val.class_ids) == set(range(40, 50))
    assert set(test.class_ids) == set(range(50, 100))
    assert len(train) + len(val) + len(test) == 5902
    assert test.info["num_classes"] == 50 and test.info["classes"][0] == "Red_breasted_Merganser"
    image, _ = test[0]
    assert tuple(image.shape) == (3, 32, 32)
