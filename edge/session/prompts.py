"""Every written and spoken prompt, in Mandarin (default) and English.

Short sentences, one instruction each: the same text is shown in large type
and spoken through the HAL speaker.
"""

from typing import Final

LANGUAGES: Final = ("zh", "en")

TEXTS: Final[dict[str, dict[str, str]]] = {
    "idle": {"zh": "请插入或放上您的身份证或社保卡", "en": "Please insert or place your ID card"},
    "reading": {"zh": "正在读卡，请稍候", "en": "Reading your card, please wait"},
    "card_unreadable": {
        "zh": "读卡失败，请取出卡片再放一次",
        "en": "The card could not be read. Please take it out and try again",
    },
    "card_expired": {
        "zh": "您的证件已过期，请到窗口办理",
        "en": "Your card has expired. Please see the staff at the desk",
    },
    "card_unknown": {
        "zh": "未找到您的参保信息，请到窗口咨询",
        "en": "We cannot find your pension record. Please see the staff at the desk",
    },
    "no_reference": {
        "zh": "无法核对照片，请到窗口办理",
        "en": "We have no photo to compare with. Please see the staff at the desk",
    },
    "look": {"zh": "请看着摄像头", "en": "Please look at the camera"},
    "closer": {"zh": "请靠近一点", "en": "Please come a little closer"},
    "light": {"zh": "光线太暗，请到亮一点的地方", "en": "It is too dark. Please find more light"},
    "one_person": {
        "zh": "请只留一个人在镜头前",
        "en": "Only one person in front of the camera, please",
    },
    "hold_still": {"zh": "请保持不动", "en": "Please hold still"},
    "challenge_blink": {"zh": "请慢慢眨一下眼睛", "en": "Please blink slowly"},
    "challenge_open_mouth": {"zh": "请张开嘴巴", "en": "Please open your mouth"},
    "challenge_turn_left": {
        "zh": "请慢慢向左转头",
        "en": "Please turn your head slowly to your left",
    },
    "challenge_turn_right": {
        "zh": "请慢慢向右转头",
        "en": "Please turn your head slowly to your right",
    },
    "challenge_nod": {"zh": "请慢慢点一下头", "en": "Please nod slowly"},
    "good": {"zh": "很好", "en": "Well done"},
    "try_again": {"zh": "没有成功，我们再试一次", "en": "That did not work. Let us try again"},
    "matching": {"zh": "正在核对，请稍候", "en": "Checking, please wait"},
    "vein_place": {
        "zh": "请把手指放进指静脉仪",
        "en": "Please put your finger into the finger reader",
    },
    "vein_release": {"zh": "请移开手指", "en": "Please take your finger out"},
    "vein_no_vein": {"zh": "请把手指放平放稳", "en": "Please lay your finger flat and still"},
    "done_pass": {
        "zh": "认证成功！本年度养老金照常发放",
        "en": "Certified! Your pension continues as usual",
    },
    "done_fail": {
        "zh": "认证未通过，请到窗口由工作人员帮助您",
        "en": "Not certified. The staff at the desk will help you",
    },
    "staff": {
        "zh": "请到窗口，工作人员会帮助您完成认证",
        "en": "Please see the staff at the desk. They will help you finish",
    },
    "take_card": {"zh": "请取回您的卡片", "en": "Please take your card"},
    "desk_ready": {
        "zh": "工作人员模式：请选择办理方式",
        "en": "Staff mode: choose how to certify",
    },
    "vein_needs_check": {
        "zh": "请先完成人脸认证或人工核验",
        "en": "First certify by face or check the person in person",
    },
    "vein_unavailable": {
        "zh": "未能录入指静脉，请重试",
        "en": "No finger vein was enrolled. Please try again",
    },
    "vein_enrolled": {"zh": "指静脉已录入", "en": "Finger vein enrolled"},
    "vein_again": {
        "zh": "请再放一次同一根手指",
        "en": "Please place the same finger once more",
    },
    "status_card": {
        "zh": "请插入或放上您的卡片，查询认证状态",
        "en": "Please insert or place your card to check your status",
    },
    "status_asking": {"zh": "正在查询，请稍候", "en": "Looking up your status, please wait"},
    "status_shown": {"zh": "这是您的认证状态", "en": "Here is your certification status"},
    "status_unknown": {
        "zh": "未找到您的参保信息，请到窗口咨询",
        "en": "We cannot find your pension record. Please see the staff at the desk",
    },
    "status_offline": {
        "zh": "现在无法连接服务中心，请稍后再查，或到窗口咨询",
        "en": "The service centre cannot be reached now. Please try later or ask at the desk",
    },
}

NEXT: Final[dict[str, dict[str, str]]] = {
    "pass": {
        "zh": "无需再做任何事。下次认证在一年后。",
        "en": "Nothing else to do. Your next certification is due in a year.",
    },
    "fail": {
        "zh": "您的养老金不会马上停发。请带上身份证到窗口。",
        "en": "Your pension is not stopped now. Bring your ID card to the desk.",
    },
    "refer": {
        "zh": "您的养老金不会马上停发。请带上身份证到窗口。",
        "en": "Your pension is not stopped now. Bring your ID card to the desk.",
    },
}

RECEIPT: Final[dict[str, dict[str, str]]] = {
    "waiting": {
        "zh": "回执二维码正在生成。不能等的话，以后查询状态时也可以取得",
        "en": "Your receipt QR code is on its way. You can also get it later: check your status",
    },
    "ready": {
        "zh": "请用手机拍下二维码，银行等机构可以用它核实您的认证",
        "en": "Take a photo of this QR code: a bank or agency can check your certification with it",
    },
}

_FIELDS: Final = {
    "certified_until": {"zh": "认证有效期至", "en": "Certified until"},
    "next_due": {"zh": "下次认证截止", "en": "Next certification due"},
    "last": {"zh": "上次认证", "en": "Last certification"},
    "payment": {"zh": "本月养老金", "en": "This month's pension"},
}
_CHANNELS: Final = {
    "kiosk": {"zh": "自助终端", "en": "self-service terminal"},
    "desk": {"zh": "社区窗口", "en": "community desk"},
    "mobile": {"zh": "手机", "en": "phone"},
}
_PAYMENTS: Final = {
    "pay": {"zh": "照常发放", "en": "paid as usual"},
    "resume": {"zh": "恢复发放", "en": "paid again (resumed)"},
    "hold": {"zh": "暂停发放，请尽快认证", "en": "on hold: please certify soon"},
    "stop": {"zh": "已停发，请到窗口咨询", "en": "stopped: please ask at the desk"},
}
_NONE: Final = {"zh": "无记录", "en": "none on record"}
_NOT_YET: Final = {"zh": "尚未决定", "en": "not decided yet"}


def status_rows(status: dict[str, str | None]) -> list[dict[str, dict[str, str]]]:
    """A status lookup's answer as labelled rows, each label and value in both languages."""

    def date(key: str) -> dict[str, str]:
        value = status.get(key)
        return {"zh": value, "en": value} if value else _NONE

    last = status.get("last_certified_on")
    if last:
        channel = _CHANNELS.get(status.get("last_channel") or "", {"zh": "", "en": ""})
        place = status.get("last_place") or ""
        last_value = {
            lang: " · ".join(p for p in (last, channel[lang], place) if p) for lang in LANGUAGES
        }
    else:
        last_value = _NONE
    decision = status.get("payment_decision")
    period = status.get("payment_period")
    payment = _PAYMENTS.get(decision or "", _NOT_YET)
    if period:
        payment = {lang: f"{period}: {payment[lang]}" for lang in LANGUAGES}
    values = {
        "certified_until": date("certified_until"),
        "next_due": date("next_due"),
        "last": last_value,
        "payment": payment,
    }
    return [{"label": _FIELDS[key], "value": values[key]} for key in _FIELDS]


def status_speech(status: dict[str, str | None], language: str) -> str:
    """What the speaker says about a status: the key dates and this month's pension."""
    lang = language if language in LANGUAGES else "zh"
    return "; ".join(
        f"{row['label'][lang]}: {row['value'][lang]}"
        for row in status_rows(status)
        if row["label"] is not _FIELDS["last"]
    )


def text(key: str, language: str) -> str:
    """The prompt ``key`` in ``language`` (``zh`` or ``en``)."""
    return TEXTS[key][language if language in LANGUAGES else "zh"]
