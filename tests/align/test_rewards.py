"""src/align/rewards.py: the final answer's extraction rules, answer comparison, the format and length rewards,
--reward specs with weights and a user's module:function, scoring, and errors of one line."""

import math
import re

import pytest
import torch

from src.align import BUILTIN_REWARDS, Reward, RewardError, final_answer, parse_reward, score, weighted_total
from src.align.rewards import answers_match, exact, last_boxed, length_within, matches_format


@pytest.mark.parametrize("completion, expected", [
    # an answer marker: the first non-empty line after the last one, any case
    ("Let me think. The answer is 42.", "42."),
    ("Answer: Paris\nThat is all.", "Paris"),
    ("answer: 1\nfinal ANSWER: 2", "2"),
    ("Final Answer:\n\n   $12$.", "$12$."),
    ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72"),
    ("The answer is: 3", "3"),
    ("So the answer is $\\boxed{7}$.", "7"),                           # a \boxed{} on the marker's line
    ("the answer isn't 5, it is 6", "6"),                               # "answer isn't" is no marker
    ("Answer:", None),                                                  # nothing after it, nothing else
    ("Answer:   \n", None),
    # else the last \boxed{...}, braces balanced
    ("First \\boxed{1}, then \\boxed{2}", "2"),
    ("so \\boxed{\\frac{1}{2}} holds", "\\frac{1}{2}"),
    ("\\boxed{x^{2}+\\{y\\}}", "x^{2}+\\{y\\}"),
    ("\\boxed{never closed 3", "3"),                                    # no boxed answer: the last number
    # else the last number: integers, decimals, negatives, thousands separators
    ("we get 1,234 and then -3.5.", "-3.5"),
    ("a total of 1,234,567 apples", "1,234,567"),
    ("totals 1,234, 5,678 and so on", "5,678"),
    ("1,23456", "23456"),
    ("x = -7", "-7"),
    ("10-3 leaves 7", "7"),
    ("about .5 of it", ".5"),
    ("H2O and CO2 only", None),                                         # digits inside words are no numbers
    ("no digits here", None),
    ("", None),
    # the reasoning is not read: only what follows </think>
    ("<think>the answer is 7</think> it is 8", "8"),
    ("<think>Answer: 7</think>\nAnswer: 9", "9"),
    ("<think>7</think><think>8</think> and 10", "10"),
    ("<think>7 and 9", None),                                           # still reasoning: no answer
    ("<think>7</think>", None),
])
def test_final_answer(completion, expected):
    assert final_answer(completion) == expected


@pytest.mark.parametrize("extracted, answer, same", [
    ("3.0", "3", True), ("3", "3.0", True), ("1,234", "1234", True), ("-0.50", "-.5", True), ("$5$", "5", True),
    ("42.", "42", True), ('"Paris".', "paris", True), ("  New   York ", "new york", True), ("`x`", "x", True),
    ("$1,000", "1000", True), ("42 apples", "42", True), ("it is 4.", "4", True),
    ("3", "4", False), ("3.01", "3", False), ("-3", "3", False), ("Paris", "London", False), ("none", "3", False),
    (None, "3", False), ("1/2", "0.5", False), ("\\frac{1}{2}", "\\frac{1}{2}", True),
])
def test_answers_match(extracted, answer, same):
    assert answers_match(extracted, answer) is same


def test_exact():
    assert exact("", "<think>hmm, 3?</think> The answer is 1,024.", "1024") == 1.0
    assert exact("", "The answer is 1,025.", "1024") == 0.0
    assert exact("", "<think>the answer is 1024", "1024") == 0.0
    with pytest.raises(ValueError, match="the sample has no answer to compare with"):
        exact("", "42", None)


@pytest.mark.parametrize("completion, fits", [
    ("<think>reason</think>answer", True),
    (" <think>\nstep 1\nstep 2\n</think>\n\nThe answer is 4.\n\n", True),
    ("<think></think> 4", True),                                        # an empty reasoning part
    ("<think>reason</think>", False),                                   # no answer
    ("<think>reason</think>  \n ", False),
    ("answer only", False),
    ("<think>unclosed answer", False),
    ("<think>a</think> b <think>c</think> d", False),                    # one reasoning part
    ("<think>a <think>b</think> c", False),
    ("before <think>a</think> b", False),
])
def test_the_default_format_is_a_g1_reasoning_reply(completion, fits):
    assert matches_format("", completion, None) == float(fits)
    assert parse_reward("format").fn("", completion, None) == float(fits)


def test_the_format_regex_is_a_parameter():
    reward = parse_reward("format", format_regex=r"Answer: \d+")
    assert reward.fn("", "Answer: 12", None) == 1.0
    assert reward.fn("", "Answer: 12 and more", None) == 0.0                # fullmatch
    assert parse_reward("format", format_regex=r"a.b").fn("", "a\nb", None) == 1.0    # DOTALL


@pytest.mark.parametrize("n, value", [(0, 1.0), (50, 1.0), (100, 1.0), (101, 0.99), (150, 0.5), (199, 0.01),
                                      (200, 0.0), (10_000, 0.0)])
def test_length_is_one_up_to_the_target_then_falls_to_zero_at_twice_it(n, value):
    assert length_within("", "x" * n, None, target=100) == pytest.approx(value)
    assert parse_reward("length", length_target=100).fn("", "x" * n, None) == pytest.approx(value)


def test_specs_give_names_and_weights():
    assert [r.name for r in map(parse_reward, BUILTIN_REWARDS)] == ["exact", "format", "length"]
    assert parse_reward("exact").weight == 1.0 and parse_reward("exact").fn is exact
    assert parse_reward("exact=0.5").weight == 0.5
    assert parse_reward(" length = -2 ").weight == -2.0                     # a penalty
    assert parse_reward("format=1e-1").weight == 0.1
    assert parse_reward("length=0").weight == 0.0


def test_a_users_function_from_a_module_in_the_current_directory(tmp_path, monkeypatch):
    package = tmp_path / "myrewards_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "scoring.py").write_text("def brevity(prompt, completion, answer):\n"
                                        "    return 1.0 / (1 + len(completion))\n"
                                        "LIMIT = 3\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(__import__("sys").modules, "myrewards_pkg", raising=False)
    monkeypatch.delitem(__import__("sys").modules, "myrewards_pkg.scoring", raising=False)
    reward = parse_reward("myrewards_pkg.scoring:brevity=0.25")
    assert (reward.name, reward.weight) == ("myrewards_pkg.scoring:brevity", 0.25)
    assert reward.fn("p", "abc", None) == 0.25
    assert str(tmp_path) not in __import__("sys").path                      # the search path is put back
    with pytest.raises(ValueError, match=r"^--reward myrewards_pkg.scoring:LIMIT: myrewards_pkg.scoring.LIMIT is "
                                         r"a int, not a function$"):
        parse_reward("myrewards_pkg.scoring:LIMIT")
    (tmp_path / "broken_rewards.py").write_text("def f(:\n")
    with pytest.raises(ValueError, match=r"^--reward broken_rewards:f: cannot import broken_rewards \(SyntaxError: "):
        parse_reward("broken_rewards:f")


@pytest.mark.parametrize("spec, message", [
    ("exactt", "--reward exactt: unknown reward 'exactt'; expected one of exact, format, length or "
               "module.path:function"),
    ("", "--reward : unknown reward ''"),
    ("exact=abc", "--reward exact=abc: the weight must be a number, got 'abc'"),
    ("exact=", "--reward exact=: the weight must be a number, got ''"),
    ("exact=nan", "--reward exact=nan: the weight must be finite, got 'nan'"),
    ("exact=inf", "--reward exact=inf: the weight must be finite"),
    ("no_such_module_here:f", r"--reward no_such_module_here:f: cannot import no_such_module_here "
                              r"\(ModuleNotFoundError: No module named 'no_such_module_here'\)"),
    ("math:no_such_function", "--reward math:no_such_function: math has no no_such_function"),
    ("math:pi", "--reward math:pi: math.pi is a float, not a function"),
    (":f", r"--reward :f: expected a built-in \(exact, format, length\) or module.path:function"),
    ("math:", "--reward math:: expected a built-in"),
    ("a:b:c", "--reward a:b:c: expected a built-in"),
])
def test_bad_specs_are_one_line_naming_the_flag_and_spec(spec, message):
    with pytest.raises(ValueError, match="^" + (message if "\\" in message else re.escape(message))) as caught:
        parse_reward(spec)
    assert "\n" not in str(caught.value)


def test_bad_format_regex_and_length_target():
    with pytest.raises(ValueError, match=r"^--reward format=2: the format regex '\(unclosed' is not a regular "
                                         r"expression \(missing \), unterminated subpattern at position 0\)$"):
        parse_reward("format=2", format_regex="(unclosed")
    with pytest.raises(ValueError, match="--reward length: the length target must be a whole number of characters "
                                         ">= 1, got 0"):
        parse_reward("length", length_target=0)
    parse_reward("exact", format_regex="(unclosed", length_target=0)       # only the reward that uses them checks


def test_score_and_weighted_total():
    rewards = [parse_reward("exact=2"), parse_reward("format=0.5"), parse_reward("length=-1", length_target=10)]
    completions = ["<think>x</think>The answer is 4.", "The answer is 5 and this runs on for a while", "4"]
    scores = score(rewards, ["q1", "q2", "q3"], completions, ["4", "4", "4"])
    assert scores.dtype == torch.float64 and scores.shape == (3, 3)
    long = len(completions[1])
    assert scores.tolist() == [[1.0, 1.0, 0.0], [0.0, 0.0, max(0.0, (20 - long) / 10)], [1.0, 0.0, 1.0]]
    assert weighted_total(scores, rewards).tolist() == [2.5, -scores[1, 2].item(), 1.0]
    assert score([], ["q"], ["c"], [None]).shape == (1, 0)
    with pytest.raises(ValueError, match="score: 2 prompts, 1 completions and 1 answers"):
        score(rewards, ["a", "b"], ["c"], ["d"])
    with pytest.raises(ValueError, match=r"weighted_total: scores of shape \(3, 3\) for 2 rewards"):
        weighted_total(scores, rewards[:2])


def test_any_real_number_or_a_one_element_tensor_is_a_value():
    values = iter([True, 3, 0.5, torch.tensor(0.25), torch.tensor([2.0])])
    scores = score([Reward("mine", lambda p, c, a: next(values))], ["p"] * 5, ["c"] * 5, [None] * 5)
    assert scores[:, 0].tolist() == [1.0, 3.0, 0.5, 0.25, 2.0]


@pytest.mark.parametrize("value, shown", [(float("nan"), "returned nan, not a finite number"),
                                          (math.inf, "returned inf, not a finite number"),
                                          (None, "returned None, not a finite number"),
                                          ("1.0", "returned '1.0', not a finite number"),
                                          (torch.ones(2), r"returned tensor\(\[1., 1.\]\), not a finite number")])
def test_a_bad_value_names_the_reward_the_sample_and_the_value(value, shown):
    rewards = [parse_reward("length"), Reward("mypkg:bad", lambda p, c, a: value if c.startswith("bad") else 1.0)]
    completions = ["fine", "bad " + "x" * 100]
    with pytest.raises(RewardError, match=rf"^reward mypkg:bad on sample 1 \('bad x{{56}}'\.\.\.\) {shown}$"):
        score(rewards, ["p", "p"], completions, [None, None])


def test_a_raising_reward_names_the_reward_the_sample_and_the_exception():
    def fails(prompt, completion, answer):
        raise KeyError("no such\nkey")

    with pytest.raises(RewardError, match=r"^reward mine on sample 0 \('abc'\) raised KeyError: 'no such\\nkey'$") \
            as caught:
        score([Reward("mine", fails)], ["p"], ["abc"], [None])
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)
    with pytest.raises(RewardError, match=r"^reward exact on sample 0 \('42'\) raised ValueError: the sample has no "
                                          r"answer to compare with"):
        score([parse_reward("exact")], ["p"], ["42"], [None])
