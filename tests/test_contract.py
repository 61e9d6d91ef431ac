"""The one contract every kind of class model honours: a kind in the kind table passes this or does not land.

For each kind of ``bank.kinds.KINDS``: its parameters are declared once (a rule for each, ``get_params``, a
readable ``repr``), a bad one is refused naming it before any image is read, an unfitted model says so,
``fit`` returns the model with its statistics and training record, its own images score lower than
another class's, saving and loading through the registry answers exactly as before (Keras) or within
LiteRT's tolerance, and the kind's group scorer gives each class's own scores.
"""

from __future__ import annotations

import numpy as np
import pytest

from bank import Registry, Router
from bank.errors import InputError
from bank.kinds import KINDS, kind_class
from bank.kinds.base import ClassModel, NotFittedError

#: Settings that keep each kind's training short here (the options a kind does not take are left out).
QUICK = {"seed": 0, "epochs": 3, "verbose": 0}


@pytest.fixture(scope="module")
def two_digits(digits):
    images, labels = digits
    return images[labels == 0][:70], images[labels == 1][:70]


@pytest.fixture(scope="module", params=list(KINDS))
def fitted(request, two_digits, tmp_path_factory):
    """Per kind: two classes fitted on 0s and 1s, registered, and loaded back."""
    cls = kind_class(request.param)
    zeros, ones = two_digits
    a = cls.from_options(None, **QUICK).fit(zeros[:60])
    b = cls.from_options(None, **QUICK).fit(ones[:60])
    reg = Registry(tmp_path_factory.mktemp(f"contract-{request.param}"))
    reg.register("zero", a)
    reg.register("one", b)
    return request.param, a, b, reg


@pytest.mark.parametrize("kind", list(KINDS))
def test_parameters_are_declared_once_and_checked_before_any_image(kind, two_digits):
    cls = kind_class(kind)
    m = cls.from_options(None, **QUICK)
    assert isinstance(m, ClassModel) and m.kind == kind and cls.summary and cls.score_label
    params = m.get_params()
    assert set(params) == set(cls.param_defaults()) == set(cls.param_rules())  # a rule for every parameter
    # the command line's options the kind takes, each at the kind's default, make a model its rules allow
    cls.from_options(None, **{o: cls.option_default(o) for o in cls.training_options})._check_params()
    assert repr(m).startswith(f"{cls.__name__}(") and repr(cls()) == f"{cls.__name__}()"
    m._check_params()  # the defaults are allowed
    with pytest.raises(NotFittedError, match="not fitted"):
        m.score_samples(two_digits[0][:2])
    for name, rule in cls.param_rules().items():
        bad = object()
        if rule.allows(bad):
            continue  # a rule that takes anything (a folder, a callback)
        with pytest.raises(InputError, match=f"{kind} {name}: expected "):
            cls.from_options(None, **QUICK).set_params(**{name: bad}).fit(two_digits[0])
    with pytest.raises(InputError, match="no parameter 'colour'"):
        m.set_params(colour="red")


def test_fit_scores_its_own_class_lower(fitted, two_digits):
    kind, a, b, _ = fitted
    zeros, ones = two_digits
    assert a.training_["n_train"] + a.training_["n_calibration"] <= 60 and a.stats_.n == a.training_["n_calibration"]
    own, other = a.score_samples(zeros[60:]), a.score_samples(ones[60:])
    assert own.shape == (10,) and np.all(np.isfinite(own)) and own.mean() < other.mean()
    # a kind that trains by epochs gets the convergence verdict on its curve, in the card (bank show says it)
    assert ("convergence" in a.training_) == bool(a.curves().get("loss"))
    p = a.predict_proba(zeros[60:63])
    assert p.shape == (3, 2) and np.allclose(p.sum(1), 1)


@pytest.mark.parametrize("runtime", ["keras", "auto"])
def test_saved_and_loaded_through_the_registry_it_answers_as_before(fitted, two_digits, runtime):
    kind, a, _, reg = fitted
    x = np.concatenate(two_digits)[::7]
    back = reg.load_detector("zero", runtime=runtime)
    assert type(back) is type(a) and back.kind == kind and back.spec_ == a.spec_ and back.stats_ == a.stats_
    tol = 1e-5 if runtime == "keras" else 1e-4  # float32 sums; LiteRT is checked against Keras to 1e-5 at saving
    np.testing.assert_allclose(back.score_samples(x), a.score_samples(x), rtol=tol, atol=1e-6)
    assert reg.entry("zero").kind == kind and reg.verify() == []


def test_the_group_scorer_gives_each_class_its_own_scores(fitted, two_digits):
    kind, a, b, reg = fitted
    x = np.concatenate(two_digits)[::5]
    router = Router.from_registry(reg, runtime="keras")
    loaded = [router.detectors[c] for c in router.classes]
    at_spec = type(a)._prepare(loaded[0], x)  # the images at the classes' shared spec
    together = type(a).group_scorer(loaded)(at_spec)
    alone = np.stack([m.score_samples(x) for m in loaded], axis=1)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(router.score(x).errors, alone, rtol=1e-5, atol=1e-7)
