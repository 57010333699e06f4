"""The supernode side of preheat: warm one URL through our own CDN and wait for it."""

from __future__ import annotations

from supernode.cdn.interface import OriginRequest
from supernode.errors import SupernodeError
from supernode.preheat.warmer import WarmError, WarmRequest, WarmResult
from supernode.protocol import ids
from supernode.protocol.codes import CdnStatus
from supernode.service import SupernodeService


class ServiceWarmer:
    """`TaskWarmer` over a `SupernodeService`: a registration without a peer, then a wait."""

    def __init__(self, service: SupernodeService) -> None:
        self.service = service

    def task_id_for(self, request: WarmRequest) -> str:
        headers = dict(request.headers)
        task_url = ids.filter_url(request.url, list(request.filter))
        return ids.task_id(
            task_url, identifier=request.identifier, range_header=headers.get("Range")
        )

    async def warm(self, request: WarmRequest) -> WarmResult:
        service = self.service
        headers = dict(request.headers)
        task_url = ids.filter_url(request.url, list(request.filter))
        task_id = self.task_id_for(request)
        origin = OriginRequest(
            url=request.url,
            headers=tuple(headers.items()),
            insecure=request.insecure,
            root_cas=request.root_cas,
        )
        req = {"raw_url": request.url, "md5": "", "identifier": request.identifier}
        try:
            state = await service.task_for(task_id, task_url, req, headers, origin)
        except SupernodeError as exc:
            raise WarmError(exc.message) from exc
        state.task.access_time = service.clock()
        service.trigger_cdn(state)
        await state.fill_done.wait()
        task = state.task
        task.access_time = service.clock()
        if service.states.get(task_id) is not state:
            raise WarmError(f"task {task_id} was deleted while warming")
        if task.cdn_status is not CdnStatus.SUCCESS:
            raise WarmError(task.fail_reason or f"cdn status {task.cdn_status.value}")
        return WarmResult(
            task_id=task_id,
            http_file_length=task.http_file_length,
            real_md5=task.real_md5,
            cache_hit=task.origin_bytes == 0,
            sha256=await service.cdn.content_sha256(task_id),
        )

    def progress(self, task_id: str) -> tuple[int, int] | None:
        state = self.service.states.get(task_id)
        if state is None:
            return None
        return state.progress.cdn_done.bit_count(), state.task.piece_total
