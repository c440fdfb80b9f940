"""The resumable steps the demo and bench/claim.py run: commands, markers, logs and failures."""

import json
import sys

import pytest

from dynamo_bringup import demo
from dynamo_bringup.steps import Step, StepFailed

# python -c SCRIPT MARKER ARGS...: writes ARGS to MARKER
WRITE_ARGUMENTS = 'import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(" ".join(sys.argv[2:]))'


def _python(script: str, *arguments: str) -> list[str]:
    return [sys.executable, '-c', script, *arguments]


def test_command_gets_the_recorded_bags_and_logs_its_command_line_first(tmp_path):
    bags = tmp_path / 'bags'
    for episode in ('episode_001', 'episode_000'):
        (bags / episode).mkdir(parents=True)
        (bags / episode / 'metadata.yaml').write_text('')
    (bags / 'being_recorded').mkdir()   # no metadata.yaml yet: not a bag
    marker, log = tmp_path / 'arguments.txt', tmp_path / 'step.log'
    step = Step('convert', marker, _python(WRITE_ARGUMENTS + '; print("converted")', str(marker), '--x'),
                bag_dirs=[bags])
    assert not step.done
    announced = []
    step.run(log=log, announce=announced.append)
    assert step.done
    assert marker.read_text() == f'--x {bags / "episode_000"} {bags / "episode_001"}'
    first_line, output = log.read_text().split('\n', 1)
    assert first_line.startswith('$ ') and first_line.endswith('episode_001')
    assert output == 'converted\n'
    assert announced == [[*step.command, str(bags / 'episode_000'), str(bags / 'episode_001')]]


def test_failed_command_raises_with_its_exit_code_and_the_end_of_its_log(tmp_path):
    marker, log = tmp_path / 'COMPLETE', tmp_path / 'step.log'
    step = Step('record', marker, _python('print("no robot"); raise SystemExit(3)'), marker_text='recorded\n')
    with pytest.raises(StepFailed, match='no robot') as failure:
        step.run(log=log)
    assert failure.value.returncode == 3 and 'exit code 3' in str(failure.value)
    assert not step.done   # the marker is written only after a success


def test_marker_text_marks_a_command_whose_output_has_no_final_file(tmp_path):
    step = Step('record', tmp_path / 'COMPLETE', _python('pass'), marker_text='recorded\n')
    step.run()
    assert step.done and step.marker.read_text() == 'recorded\n'


def test_step_that_finishes_without_its_marker_fails(tmp_path):
    with pytest.raises(StepFailed, match='without writing'):
        Step('pretrain', tmp_path / 'encoder.pt', _python('pass')).run()


def test_call_step_runs_in_this_process(tmp_path):
    marker = tmp_path / 'encoder.pt'
    Step('random init', marker, call=lambda: marker.write_text('weights')).run()
    assert marker.read_text() == 'weights'


def test_demo_reuses_finished_steps_and_prints_the_results(tmp_path, capsys):
    output = tmp_path / 'demo'
    steps = demo.demo_steps(demo.parse_args(['--output', str(output)]))
    for step in steps:
        step.marker.parent.mkdir(parents=True, exist_ok=True)
        step.marker.write_text('')
    steps[-1].marker.write_text(json.dumps(
        {'tasks': [{'task': 'open_door', 'episodes': 10, 'success_rate': 0.7, 'standard_error': 0.1}]}))
    assert demo.main(['--output', str(output)]) == 0
    printed = capsys.readouterr().out
    assert printed.count('done earlier') == len(steps)
    assert 'open_door' in printed and '70%' in printed
