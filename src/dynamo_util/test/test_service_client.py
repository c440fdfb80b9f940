"""ServiceClient against a real service server over DDS (both nodes in this process)."""

import pytest
from std_srvs.srv import SetBool

from dynamo_util.service_client import ServiceClient, ServiceTimeoutError, ServiceUnavailableError

pytestmark = pytest.mark.ros


def test_call_waits_for_the_server_and_returns_its_answer(ros_node):
    calls = []

    def answer(request, response):
        calls.append(request.data)
        response.success, response.message = True, f'got {request.data}'
        return response

    ros_node.node.create_service(SetBool, 'tiny_switch', answer)
    checks = []
    client = ServiceClient(ros_node.node, ros_node.executor, SetBool, 'tiny_switch',
                           while_waiting=lambda: checks.append(True))
    response = client.call(SetBool.Request(data=True), timeout_s=20.0)
    assert (response.success, response.message, calls) == (True, 'got True', [True])
    assert checks, 'while_waiting runs while the call waits'


def test_no_server_is_a_clear_error(ros_node):
    client = ServiceClient(ros_node.node, ros_node.executor, SetBool, 'nobody_serves_this')
    with pytest.raises(ServiceUnavailableError, match=r'service nobody_serves_this not available after 0.5 s'):
        client.call(SetBool.Request(data=True), timeout_s=0.5)


def test_a_server_that_never_answers_is_a_clear_error(ros_node):
    from rclpy.node import Node

    # A server on a node nothing spins: discovered, but it never takes the request.
    silent = Node('silent_server', context=ros_node.node.context)
    silent.create_service(SetBool, 'silent_switch', lambda request, response: response)
    try:
        client = ServiceClient(ros_node.node, ros_node.executor, SetBool, 'silent_switch')
        with pytest.raises(ServiceTimeoutError, match=r'service silent_switch did not answer within 1 s'):
            client.call(SetBool.Request(data=True), timeout_s=1.0)
    finally:
        silent.destroy_node()


def test_an_idempotent_request_is_sent_again_until_answered(ros_node):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    # The server takes no request during the call (its node is not spun): as if every answer
    # were lost. The client must have sent the request again every resend_after_s.
    taken = []
    server = Node('late_server', context=ros_node.node.context)
    server.create_service(SetBool, 'late_switch', lambda request, response: taken.append(request.data) or response)
    try:
        client = ServiceClient(ros_node.node, ros_node.executor, SetBool, 'late_switch', resend_after_s=0.3)
        with pytest.raises(ServiceTimeoutError):
            client.call(SetBool.Request(data=True), timeout_s=1.5)
        server_executor = SingleThreadedExecutor(context=ros_node.node.context)
        server_executor.add_node(server)
        for _ in range(20):
            server_executor.spin_once(timeout_sec=0.05)
        server_executor.shutdown()
        assert len(taken) >= 3 and set(taken) == {True}
    finally:
        server.destroy_node()


def test_while_waiting_can_end_the_wait_early(ros_node):
    class ServerDied(RuntimeError):
        pass

    def check():
        raise ServerDied('the server process exited')

    client = ServiceClient(ros_node.node, ros_node.executor, SetBool, 'nobody_serves_this', while_waiting=check)
    with pytest.raises(ServerDied):
        client.call(SetBool.Request(data=True), timeout_s=20.0)
