"""Preprocessing helpers and the confusion matrix / per-class report."""

import numpy as np
import pytest

from tinynet import metrics, preprocessing


def test_scale_and_flatten():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    s = preprocessing.scale(x)
    assert s.dtype == np.float32 and s.max() == 1.0
    np.testing.assert_allclose(preprocessing.flatten(s), [[0, 1, 0.2, 0.4]], rtol=1e-6)


def test_standardizer_uses_training_statistics_only():
    train, test = np.array([[0.0, 2.0], [2.0, 4.0]]), np.array([[100.0, 100.0]])
    s = preprocessing.Standardizer().fit(train)
    assert s.mean == 2.0 and s.std == pytest.approx(np.sqrt(2.0))
    np.testing.assert_allclose(s.transform(test), (test - 2.0) / np.sqrt(2.0), rtol=1e-6)
    z = s.transform(train)
    assert z.mean() == pytest.approx(0, abs=1e-7) and z.std() == pytest.approx(1, abs=1e-6)
    per = preprocessing.Standardizer(per_feature=True).fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert np.all(np.isfinite(per.transform(np.array([[2.0, 6.0]]))))  # constant feature: no division by 0
    with pytest.raises(RuntimeError, match="fit"):
        preprocessing.Standardizer().transform(train)


def test_to_categorical():
    np.testing.assert_array_equal(preprocessing.to_categorical([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    assert preprocessing.to_categorical(np.array([[1], [3]])).shape == (2, 4)
    with pytest.raises(ValueError, match="class index 5 is out of range for num_classes=3"):
        preprocessing.to_categorical([5], 3)
    with pytest.raises(ValueError, match="must be >= 0"):
        preprocessing.to_categorical([-1, 2])


def test_train_val_split_takes_the_tail_like_keras():
    x, y = np.arange(10)[:, None], np.arange(10)
    (xt, yt), (xv, yv) = preprocessing.train_val_split(x, y, 0.2)
    assert yt.tolist() == list(range(8)) and yv.tolist() == [8, 9]
    (_, ys), (_, vs) = preprocessing.train_val_split(x, y, 0.3, shuffle=True, seed=0)
    assert sorted(ys.tolist() + vs.tolist()) == list(range(10)) and len(vs) == 3
    with pytest.raises(ValueError, match="same number of samples"):
        preprocessing.train_val_split(x, y[:5])


def test_confusion_matrix_and_report():
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 2, 2]
    cm = metrics.confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 1], [0, 0, 1]])
    precision, recall, f1, support = metrics.precision_recall_f1(cm)
    np.testing.assert_allclose(precision, [1.0, 2 / 3, 0.5])
    np.testing.assert_allclose(recall, [0.5, 2 / 3, 1.0])
    np.testing.assert_allclose(f1, [2 / 3, 2 / 3, 2 / 3])
    assert support.tolist() == [2, 3, 1]
    report = metrics.classification_report(y_true, y_pred, 3)
    assert "accuracy" in report and "0.6667" in report and "macro" in report
    text = metrics.format_confusion_matrix(cm)
    assert text.splitlines()[0].startswith("true\\pred") and len(text.splitlines()) == 4


def test_confusion_matrix_rejects_bad_labels():
    with pytest.raises(ValueError, match="same length"):
        metrics.confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match=r"y_pred must be in \[0, 1\], got values from 0 to 3"):
        metrics.confusion_matrix([0, 1], [0, 3], num_classes=2)


def test_empty_class_has_zero_scores_not_nan():
    precision, recall, f1, _ = metrics.precision_recall_f1(np.array([[2, 0], [0, 0]]))
    assert np.all(np.isfinite(precision)) and recall[1] == 0 and f1[1] == 0
