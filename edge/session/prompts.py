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


def text(key: str, language: str) -> str:
    """The prompt ``key`` in ``language`` (``zh`` or ``en``)."""
    return TEXTS[key][language if language in LANGUAGES else "zh"]
