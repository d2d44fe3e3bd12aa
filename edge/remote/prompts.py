"""What the phone page says beyond the kiosk's prompts, in Mandarin and English.

The session's own prompts come from ``edge.session.prompts``; on a phone a few read
differently (there is no desk beside the retiree) and are replaced by ``PHONE`` here.
"""

from typing import Final

from edge.session import prompts

PHONE: Final[dict[str, dict[str, str]]] = {
    "staff": {
        "zh": "未能完成认证，请到您的社区服务窗口办理",
        "en": "We could not certify you. Please visit your community desk",
    },
    "done_fail": {
        "zh": "认证未通过，请到您的社区服务窗口办理",
        "en": "Not certified. Please visit your community desk",
    },
    "no_reference": {
        "zh": "首次认证请到社区服务窗口办理",
        "en": "Your first certification must be done in person at your community desk",
    },
    "reading": {"zh": "正在准备，请稍候", "en": "Getting ready, please wait"},
    "ready": {"zh": "请点击“开始”并看着摄像头", "en": "Press Start and look at the camera"},
    "abandoned": {
        "zh": "连接中断，本次认证已结束，请重新开始",
        "en": "The connection was lost and this session has ended. Please start again",
    },
}

MESSAGES: Final[dict[str, dict[str, str]]] = {
    "code_sent": {
        "zh": "如果该身份证号已登记手机号，验证码已发送，5分钟内有效",
        "en": "If this ID number is registered with a phone, a code is on its way. It is "
        "valid for 5 minutes",
    },
    "code_wrong": {
        "zh": "验证码错误或已过期，请重新获取",
        "en": "The code is wrong or has expired. Please ask for a new one",
    },
    "code_locked": {
        "zh": "尝试次数过多，请稍后重新获取验证码",
        "en": "Too many tries. Please ask for a new code later",
    },
    "too_many": {
        "zh": "请求过于频繁，请一小时后再试",
        "en": "Too many requests. Please try again in an hour",
    },
    "unavailable": {
        "zh": "服务暂时不可用，请稍后再试",
        "en": "The service is not available just now. Please try again later",
    },
    "busy": {
        "zh": "现在使用人数较多，请几分钟后再试",
        "en": "Many people are certifying just now. Please try again in a few minutes",
    },
    "first_in_person": PHONE["no_reference"],
}


def text(key: str) -> dict[str, str]:
    """Both languages of a screen's prompt as the phone shows it."""
    return PHONE.get(key) or prompts.TEXTS[key]
